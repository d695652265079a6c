"""Generic figures and their helpers: a headless pyplot, atomic saving, CAMB D_ell, Mollweide views of
full-sky maps, grids of example patches, training histories, one colour and label per method."""

from __future__ import annotations

import numpy as np

from cmbnn.io import atomic_output
from cmbnn.sky.theory import dl_from_cl


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path, **savefig_kwargs) -> None:
    """Write a figure atomically (a killed job leaves no half-written image) and close it."""
    plt = pyplot()
    with atomic_output(path) as tmp:
        fig.savefig(tmp, **savefig_kwargs)
    plt.close(fig)


def plot_spectra(cls: dict, path, title: str = "CAMB lensed CMB spectra") -> None:
    """D_ell of TT, EE, BB (log) and TE (linear), with the lensing and tensor parts of BB."""
    plt = pyplot()
    fig, (ax, ax_te) = plt.subplots(1, 2, figsize=(11, 4.2))
    ell = np.arange(len(cls["TT"]))
    sel = ell >= 2
    for name, colour in (("TT", "k"), ("EE", "C0"), ("BB", "C3")):
        ax.loglog(ell[sel], dl_from_cl(cls[name])[sel], colour, label=name)
    for name, style in (("BB_lensing", ":"), ("BB_tensor", "--")):
        if name in cls and np.any(cls[name][sel] > 0):
            ax.loglog(ell[sel], dl_from_cl(cls[name])[sel], "C3" + style, lw=1, label=name.replace("_", " "))
    ax.set_xlabel(r"$\ell$")
    ax.set_ylabel(r"$D_\ell = \ell(\ell+1)C_\ell/2\pi$ [$\mu K^2$]")
    ax.set_title(title)
    ax.legend()
    ax_te.plot(ell[sel], dl_from_cl(cls["TE"])[sel], "C2")
    ax_te.axhline(0, color="0.6", lw=0.8)
    ax_te.set_xlabel(r"$\ell$")
    ax_te.set_ylabel(r"$D_\ell^{TE}$ [$\mu K^2$]")
    ax_te.set_title("TE")
    fig.tight_layout()
    save_figure(fig, path, dpi=110)


def plot_mollweide(maps, titles, path, nside_out: int | None = None, suptitle: str = "") -> None:
    """Mollweide views of several maps side by side (degraded to nside_out), uK_CMB."""
    import healpy as hp

    plt = pyplot()
    maps = [np.asarray(m, dtype=np.float64) for m in maps]
    fig = plt.figure(figsize=(5.2 * len(maps), 3.4))
    for i, (m, title) in enumerate(zip(maps, titles)):
        if nside_out and hp.npix2nside(m.size) > nside_out:
            m = hp.ud_grade(m, nside_out)
        lim = np.percentile(np.abs(m), 99)
        hp.mollview(m, fig=fig.number, sub=(1, len(maps), i + 1), title=title, unit=r"$\mu K_{CMB}$", min=-lim, max=lim, cmap="RdBu_r")
    if suptitle:
        fig.suptitle(suptitle, y=1.04)
    save_figure(fig, path, dpi=100, bbox_inches="tight")


def plot_patch_examples(inputs: np.ndarray, labels: np.ndarray, freqs, field: str, path, n: int = 4, centers=None) -> None:
    """Rows of example patches: each frequency channel, then the CMB label."""
    plt = pyplot()
    n = min(n, len(inputs))
    ncol = inputs.shape[-1] + 1
    fig, axes = plt.subplots(n, ncol, figsize=(2.3 * ncol, 2.3 * n), squeeze=False)
    for row in range(n):
        panels = [inputs[row, ..., c] for c in range(inputs.shape[-1])] + [labels[row, ..., 0]]
        names = [f"{float(nu):g} GHz" for nu in freqs] + ["CMB label"]
        for col, (img, name) in enumerate(zip(panels, names)):
            ax = axes[row, col]
            lim = np.max(np.abs(img)) or 1.0
            im = ax.imshow(img, origin="lower", cmap="RdBu_r", vmin=-lim, vmax=lim)
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(name, fontsize=9)
            fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02)
        if centers is not None:
            axes[row, 0].set_ylabel(f"l={centers[row][0]:.0f} b={centers[row][1]:.0f}", fontsize=8)
    fig.suptitle(f"{field} patches [uK_CMB]")
    fig.tight_layout()
    save_figure(fig, path, dpi=90)


def plot_history(history, path, title="CENN training", ylabel="MSE (normalised units)") -> None:
    """Training and validation loss per epoch (log scale when every loss is positive; a VAE's
    negative ELBO with a learned pixel scale can go below zero)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(history["epoch"], history["loss"], label="training")
    losses = [history["loss"]]
    if "val_loss" in history:
        ax.plot(history["epoch"], history["val_loss"], label="validation")
        losses.append(history["val_loss"])
        best = history["val_loss"].idxmin()
        ax.axvline(history["epoch"][best], color="0.6", ls=":", label="best (restored)")
    if all((v > 0).all() for v in losses):
        ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    save_figure(fig, path, dpi=100)


METHOD_STYLE = {
    "cenn": ("C0", "CENN"),
    "ilc": ("C1", "pixel ILC"),
    "hilc": ("C2", "harmonic ILC"),
    "hilc_wiener": ("C3", "harmonic ILC + Wiener"),
}


def method_style(method: str) -> tuple[str, str]:
    """(colour, label) of a method; unknown methods get the next free colours."""
    if method not in METHOD_STYLE:
        METHOD_STYLE[method] = (f"C{len(METHOD_STYLE) % 10}", method)
    return METHOD_STYLE[method]


def spectrum_style(methods) -> dict:
    style = {"label": ("k", "-", "CMB label"), "input": ("0.6", "-", "input (label frequency)")}
    for m in methods:
        colour, name = method_style(m)
        style[m] = (colour, "-", f"{name} output")
        style[f"{m}_residual"] = (colour, ":", f"{name} residual")
    return style


SPECTRUM_STYLE = spectrum_style(["cenn", "ilc"])


