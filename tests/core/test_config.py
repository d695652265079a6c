import copy

import pytest
import yaml

from cmbnn.config import ConfigError, validate_config


@pytest.fixture()
def default(root):
    with open(root / "config" / "config.yaml") as f:
        return yaml.safe_load(f)


@pytest.fixture()
def schema(root):
    return root / "workflow" / "schemas" / "config.schema.yaml"


def test_default_and_tiny_configs_are_valid(default, schema, root):
    validate_config(copy.deepcopy(default), schema)
    with open(root / "config" / "tiny.yaml") as f:
        tiny = yaml.safe_load(f)
    merged = copy.deepcopy(default)
    for key, value in tiny.items():
        if isinstance(value, dict):
            merged[key].update(value)
        else:
            merged[key] = value
    validate_config(merged, schema)


def test_schema_defaults_fill_an_empty_config(default, schema):
    filled = validate_config({}, schema)
    assert filled["nside"] == default["nside"]
    assert filled["observation"]["beam_fwhm_arcmin"] == default["observation"]["beam_fwhm_arcmin"]
    assert filled["foregrounds"]["dust"] == default["foregrounds"]["dust"]
    assert filled["patches"]["counts"] == default["patches"]["counts"]


@pytest.mark.parametrize(
    "mutate, expected",
    [
        (lambda c: c.update(nside=100), ["'nside'", "100", "512"]),
        (lambda c: c["foregrounds"].update(components=["dust", "cosmic_strings"]), ["foregrounds.components", "cosmic_strings", "synchrotron"]),
        (lambda c: c["observation"].update(noise_T_uK_arcmin=[10.0, -1.0, 5.0]), ["observation.noise_T_uK_arcmin.1", "-1", ">= 0"]),
        (lambda c: c.update(nsidee=256), ["unknown config key", "nsidee", "nside"]),
        (lambda c: c["patches"].update(hieght=32), ["unknown config key", "patches.hieght", "height"]),
        (lambda c: c["observation"].update(beam_fwhm_arcmin=[5.0]), ["observation.beam_fwhm_arcmin", "one per frequency"]),
        (lambda c: c.update(label_frequency=353), ["label_frequency", "353"]),
        (lambda c: c["patches"].update(method="bicubic"), ["patches.method", "exact, pixel"]),
        (lambda c: c["inpainting"].update(label_lmax=1000), ["inpainting.label_lmax", "1000", "3 nside - 1 = 1535"]),
        (lambda c: c["dustvae"]["sky"]["filaments"].update(lmin=300), ["dustvae.sky.filaments.lmin", "300", "sharpness * lmax = 225"]),
    ],
)
def test_bad_values_name_the_key_and_what_is_allowed(default, schema, mutate, expected):
    config = copy.deepcopy(default)
    mutate(config)
    with pytest.raises(ConfigError) as err:
        validate_config(config, schema)
    for text in expected:
        assert text in str(err.value), (text, str(err.value))
