"""Every dust figure is written from small inputs, in place, with nothing left behind."""

import numpy as np
import pandas as pd
import pytest

from cmbnn.dust import figures as pdust

RNG = np.random.default_rng(0)


def written(path, tmp_path, expected=None):
    """The file exists, is not empty, and it is the only thing in the folder (no temp files)."""
    assert path.exists() and path.stat().st_size > 0
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(expected or [path.name])


def test_plot_samples(tmp_path):
    real = RNG.standard_normal((5, 16, 16))
    generated = {name: RNG.standard_normal((4, 16, 16)) for name in ("dust VAE", "beta-VAE", "cVAE", "Gaussian")}
    path = tmp_path / "samples.png"
    pdust.plot_samples(real, generated, path, n_show=3, stats={"log_mean": 0.1, "log_std": 0.5})
    written(path, tmp_path)


def test_plot_structure(tmp_path):
    from cmbnn.dust.structure import structure_features

    sets = {"dust VAE, sampler": RNG.standard_normal((6, 32, 32)), "test": RNG.standard_normal((6, 32, 32)) + 1.0, "dust VAE, prior z": RNG.standard_normal((6, 32, 32))}
    features = {name: structure_features(x, 30.0, n_bins=4)[0] for name, x in sets.items()}
    meta = structure_features(sets["test"], 30.0, n_bins=4)[1]
    path = tmp_path / "structure.png"
    pdust.plot_structure(features, meta, path, reference="test")
    written(path, tmp_path)


def test_plot_imputation_with_shared_and_per_patch_masks(tmp_path):
    truth = RNG.standard_normal((4, 16, 16))
    mask = np.zeros((16, 16), bool)
    mask[4:9, 5:12] = True
    predictions = {"dust VAE": truth + 0.1, "Gaussian": np.where(mask, 0.0, truth)}
    path = tmp_path / "impute.png"
    pdust.plot_imputation(truth, mask, predictions, path, n_show=2)
    per_patch = np.broadcast_to(mask, truth.shape).copy()
    per_patch[1] = False  # a patch without a hole
    path2 = tmp_path / "impute2.png"
    pdust.plot_imputation(truth, per_patch, predictions, path2)
    written(path2, tmp_path, ["impute.png", "impute2.png"])


def test_write_gif_has_every_frame(tmp_path):
    from PIL import Image

    frames = RNG.standard_normal((5, 8, 8))
    path = tmp_path / "sub" / "slerp.gif"
    pdust.write_gif(frames, path, fps=4)
    written(path, tmp_path / "sub")
    with Image.open(path) as gif:
        assert gif.n_frames == 5


def test_plot_strip(tmp_path):
    path = tmp_path / "strip.png"
    pdust.plot_strip(RNG.standard_normal((4, 8, 8, 1)), path, titles=["a", "b", "c", "d"])
    pdust.plot_strip(RNG.standard_normal((3, 8, 8)), tmp_path / "strip2.png")
    written(path, tmp_path, ["strip.png", "strip2.png"])


def test_plot_conditional(tmp_path):
    rows = []
    for stat in ("mean_log", "log10_power_ell200"):
        for b in (20.0, 40.0, 60.0):
            rows.append({"condition": b, "statistic": stat, "generated_mean": b / 50, "generated_std": 0.2, "heldout_mean": b / 45, "heldout_std": 0.3})
    path = tmp_path / "conditional.png"
    pdust.plot_conditional(pd.DataFrame(rows), path)
    written(path, tmp_path)
    # With a latent column: one generated line per source of z.
    both = pd.concat([pd.DataFrame(rows).assign(latent="prior"), pd.DataFrame(rows).assign(latent="fit", generated_mean=0.0)])
    path = tmp_path / "conditional_latent.png"
    pdust.plot_conditional(both, path)
    written(path, tmp_path, expected=["conditional.png", "conditional_latent.png"])


@pytest.mark.parametrize("latent", [1, 6])
def test_plot_latent(tmp_path, latent):
    path = tmp_path / "latent.png"
    pdust.plot_latent(RNG.standard_normal((30, latent)), RNG.uniform(20, 90, 30), path)
    written(path, tmp_path)


def test_plot_reconstructions(tmp_path):
    x = RNG.standard_normal((3, 16, 16))
    path = tmp_path / "recon.png"
    pdust.plot_reconstructions(x, x + 0.05 * RNG.standard_normal(x.shape), path, n_show=4)
    written(path, tmp_path)
