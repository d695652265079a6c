"""The whole DAG on the tiny config, through Snakemake's command line."""

import subprocess
import sys

import h5py
import numpy as np
import pytest
import yaml

from conftest import ROOT, planned_jobs

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, tiny_snakemake):
    workdir = tmp_path_factory.mktemp("dag")
    tiny_snakemake(workdir, "--cores", "2", check=True)
    return workdir


def test_tiny_dag_writes_patch_files_with_the_design_layout(tiny_run):
    cfg = yaml.safe_load((ROOT / "config" / "tiny.yaml").read_text())
    n = cfg["patches"]["counts"]
    for field in ("T", "Q", "U"):
        for split in ("train", "validation", "test"):
            with h5py.File(tiny_run / "results" / "patches" / field / f"{split}.h5", "r") as f:
                m, m0, centers = f["M"][...], f["M0"][...], f["centers"][...]
                assert m.shape == (n[split], 16, 16, 3) and m.dtype == np.float32
                assert m0.shape == (n[split], 16, 16, 1)
                assert centers.shape == (n[split], 2)
                assert np.all(np.abs(centers[:, 1]) > 20)
                assert np.all(np.isfinite(m)) and np.all(np.isfinite(m0))
                attrs = dict(f.attrs)
                assert attrs["field"] == field and attrs["units"] == "uK_CMB" and attrs["split"] == split
                assert list(attrs["frequencies_GHz"]) == [100.0, 143.0, 217.0]
                assert attrs["nside"] == 64 and attrs["pixel_size_arcmin"] == 55.0
                for key in ("seed", "config_digest", "code_version", "method"):
                    assert key in attrs
                # Inputs are label + foregrounds + noise: correlated with the label, not equal to it.
                central = m[..., 1].ravel()
                assert not np.allclose(central, m0.ravel())
                if field == "T":
                    assert np.corrcoef(central, m0.ravel())[0, 1] > 0.5
                    assert 20 < m0.std() < 300  # CMB temperature at ~1 deg resolution, uK
    for figure in ("cls_dl.png", "cmb_mollweide.png", "observed_143GHz_mollweide.png", "patches_Q.png"):
        assert (tiny_run / "results" / "figures" / figure).stat().st_size > 10_000
    for log in ("theory/camb_spectra.log", "sky/r0/observe.log", "patches/cut_train.log"):
        assert (tiny_run / "results" / "logs" / log).exists()
    assert (tiny_run / "results" / "benchmarks" / "patches" / "cut_train.tsv").exists()


def test_every_benchmarked_job_logs_its_peak_memory_within_its_request(tiny_run):
    # The peak table pairs each benchmark with its job's log ("n/a" would be a log without the
    # line) and with the mem_mib the run's log shows the job requested (rules/resources.smk);
    # status 1 if a job went over its request, as a cluster would have killed it.
    run_log = sorted((tiny_run / ".snakemake" / "log").glob("*.snakemake.log"))[0]  # the full run, the first
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "peak_memory.py"), "results/benchmarks", "--snakemake-log", str(run_log)],
        capture_output=True, text=True, timeout=120, cwd=tiny_run,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = [line for line in proc.stdout.splitlines() if line.startswith("| `")]
    assert rows and "largest: " in proc.stdout
    # Every column filled but the request of rules that state none (mem_mb) themselves.
    assert all("n/a" not in row.rsplit("|", 2)[0] for row in rows), proc.stdout
    requested = {row.split("`")[1] for row in rows if not row.endswith("n/a |")}
    assert {"sky/r0/observe", "sky/r0/cmb_map", "sky/r0/foreground_dust", "patches/cut_train"} <= requested, proc.stdout


def test_tiny_dag_trains_predicts_and_evaluates(tiny_run):
    import pandas as pd

    results = tiny_run / "results"
    # The default is one joint Q/U network, saved once, predicting both fields.
    joint = results / "models" / "cenn" / "QU"
    assert (joint / "model.keras").exists() and not (joint / "checkpoint").exists()
    assert not (results / "models" / "cenn" / "Q").exists()
    history = pd.read_csv(joint / "history.tsv", sep="\t")
    assert list(history.epoch) == [0, 1] and {"loss", "val_loss", "patches_per_second"} <= set(history.columns)
    for field in ("Q", "U"):
        for split in ("validation", "test"):
            for method in ("cenn", "ilc", "hilc", "hilc_wiener"):
                with h5py.File(results / "predictions" / method / field / f"{split}.h5", "r") as f:
                    assert f["net"].shape == f["sim"].shape == f["input"].shape == (3, 16, 16, 1)
                    assert f.attrs["method"] == method and f.attrs["units"] == "uK_CMB"
                    assert f.attrs["inputs_file"].endswith(f"patches/{field}/{split}.h5")
                    assert np.all(np.isfinite(f["net"][...]))
            metrics = pd.read_csv(results / "metrics" / field / f"{split}.tsv", sep="\t", comment="#")
            assert list(metrics.method) == ["input (label frequency)", "cenn", "ilc", "hilc", "hilc_wiener"]
            assert {"MSE", "MAE", "PSNR", "SSIM", "R2", "data_range_uK"} <= set(metrics.columns)
            # One fixed PSNR/SSIM range per field, from the training labels, the same for every split.
            with h5py.File(results / "patches" / field / "train.h5", "r") as f:
                assert np.allclose(metrics.data_range_uK, np.ptp(f["M0"][...]), rtol=1e-5)
    spectra = pd.read_csv(results / "spectra" / "QU" / "test.tsv", sep="\t", comment="#")
    quantities = set(spectra.quantity)
    for method in ("cenn", "ilc", "hilc", "hilc_wiener"):
        assert {method, f"{method}_residual", f"{method}_x_label"} <= quantities, quantities
    assert {"input", "label", "theory", "theory_lensing"} <= quantities
    assert set(spectra.spectrum) == {"EE", "EB", "BB"}
    # The label's EE is the CMB's: within a factor of a few of the binned theory on three patches
    # (three 16x16 patches cannot do better; the 5%-per-bin check at the default geometry is
    # tests/test_patches.py::test_label_bandpowers_match_camb_times_beam_at_the_default_geometry).
    label = spectra[(spectra.quantity == "label") & (spectra.spectrum == "EE")].cl_mean.to_numpy()
    theory = spectra[(spectra.quantity == "theory") & (spectra.spectrum == "EE")].cl_mean.to_numpy()
    assert np.all((label / theory > 0.2) & (label / theory < 5)), label / theory
    for figure in ("cenn_history_QU.png", "predictions_Q_test.png", "spectra_QU_test.png"):
        assert (results / "figures" / figure).stat().st_size > 10_000
    # Every method's transfer function and residual spectra on one figure, and the residual-BB aim per method.
    assert (results / "figures" / "transfer_residuals_QU_test.png").stat().st_size > 10_000
    summary = pd.read_csv(results / "spectra" / "QU" / "test_summary.tsv", sep="\t", comment="#")
    assert set(summary.method) == {"cenn", "ilc", "hilc", "hilc_wiener"} and set(summary.spectrum) == {"EE", "BB"}
    assert "residual_below_lensing_BB" in summary.columns
    # The harmonic ILC weights: one set per E/B bin, unit response to the CMB.
    with h5py.File(results / "baselines" / "hilc" / "QU" / "weights.h5", "r") as f:
        assert np.allclose(f["weights"][...].sum(axis=-1), 1.0)


def test_a_sky_without_point_sources_is_cut_into_patches(tmp_path, tiny_snakemake):
    # foregrounds.components without radio or infrared sources: an empty catalogue, no source mask.
    overlay = tmp_path / "no_sources.yaml"
    overlay.write_text(yaml.safe_dump({"foregrounds": {"components": ["dust", "synchrotron"]}}))
    tiny_snakemake(tmp_path, "--cores", "2", "results/patches/Q/test.h5", configs=[overlay], check=True)
    with h5py.File(tmp_path / "results" / "patches" / "Q" / "test.h5", "r") as f:
        assert not f["mask"][...].any() and np.all(np.isfinite(f["M"][...]))


def test_readme_figures_are_drawn_from_the_runs_outputs(tiny_run, tmp_path):
    proc = subprocess.run(
        [sys.executable, str(ROOT / "docs" / "make_figures.py"), "--results", str(tiny_run / "results"), "--out", str(tmp_path), "--no-rulegraph"],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    for name in ("cenn.png", "cosmovae.png", "dust.png"):
        assert (tmp_path / name).stat().st_size > 10_000


def test_report_has_every_figure_with_its_caption(tiny_run, tiny_snakemake):
    report = tiny_run / "report.html"
    proc = tiny_snakemake(tiny_run, "--report", str(report), check=True)
    assert "(ERROR/" not in proc.stderr and "(WARNING/" not in proc.stderr, proc.stderr[-3000:]
    html = report.read_text(errors="replace")
    for text in ("CENN training history", "Flat-sky NaMaster bandpowers", "Pixel metrics", "Lensed CMB power spectra", "Example training patches", "Every method on one figure"):
        assert text in html, text


def test_changing_a_training_setting_reruns_training_not_the_sky(tiny_run, tiny_snakemake):
    overlay = tiny_run / "longer.yaml"
    overlay.write_text(yaml.safe_dump({"cenn": {"epochs": 3}}))
    jobs = planned_jobs(tiny_snakemake(tiny_run, "-n", configs=[overlay], check=True).stdout)
    assert {"train_cenn", "predict_cenn", "spectra", "metrics"} <= set(jobs), jobs
    assert not {"cut_patches", "observe", "ilc", "fit_hilc", "hilc", "camb_spectra"} & set(jobs), jobs
    until = planned_jobs(tiny_snakemake(tiny_run, "-n", "--until", "train_cenn", configs=[overlay], check=True).stdout)
    assert "train_cenn" in until and "predict_cenn" not in until, until
    forced = planned_jobs(tiny_snakemake(tiny_run, "-n", "-R", "ilc", check=True).stdout)
    assert {"ilc", "spectra", "metrics"} <= set(forced) and "train_cenn" not in forced, forced


def test_finished_run_plans_nothing(tiny_run, tiny_snakemake):
    proc = tiny_snakemake(tiny_run, "-n", check=True)
    assert "Nothing to be done" in proc.stdout + proc.stderr


def test_changing_a_noise_level_reruns_only_observation_and_after(tiny_run, tiny_snakemake):
    overlay = tiny_run / "noisier.yaml"
    overlay.write_text(yaml.safe_dump({"observation": {"noise_P_uK_arcmin": [200.0, 70.2, 105.0]}}))
    proc = tiny_snakemake(tiny_run, "-n", configs=[overlay], check=True)
    jobs = planned_jobs(proc.stdout + proc.stderr)
    assert {"observe", "cut_patches", "plot_sky", "plot_patches"} <= set(jobs), jobs
    assert not {"camb_spectra", "cmb_map", "foreground", "plot_spectra"} & set(jobs), jobs


def test_changing_r_reruns_the_sky(tiny_run, tiny_snakemake):
    overlay = tiny_run / "tensors.yaml"
    overlay.write_text(yaml.safe_dump({"theory": {"r": 0.05}}))
    jobs = planned_jobs(tiny_snakemake(tiny_run, "-n", configs=[overlay], check=True).stdout)
    assert {"camb_spectra", "cmb_map", "observe", "cut_patches"} <= set(jobs)
    assert "foreground" not in jobs


def test_lint_is_clean(tiny_run, tiny_snakemake):
    proc = tiny_snakemake(tiny_run, "--lint")
    text = proc.stdout + proc.stderr
    assert proc.returncode == 0, text
    assert "Lints for" not in text, text


def test_bad_config_stops_before_any_job(tmp_path, tiny_snakemake):
    overlay = tmp_path / "bad.yaml"
    overlay.write_text(yaml.safe_dump({"nside": 100, "foregrounds": {"components": ["dust", "cosmic_strings"]}}))
    proc = tiny_snakemake(tmp_path, "--cores", "1", configs=[overlay])
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "config key 'nside'" in text and "cosmic_strings" in text
    assert not (tmp_path / "results").exists()
