"""The inpainting study (rules/cosmovae.smk): CosmoVAE (:mod:`.cosmovae`), the Galactic and
point-source masks it fills (:mod:`.masks`), hole metrics and calibration (:mod:`.metrics`), and
its figures (:mod:`.figures`). Its classical bound, the exact Gaussian conditional mean, is
:mod:`cmbnn.analysis.gaussian_field`."""
