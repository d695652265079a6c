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


def plot_spectra_comparison(table, theory: dict, spectrum_names, path, title="", methods=("cenn", "ilc")) -> None:
    """D_ell of mean bandpowers +- scatter, theory curve, and a ratio-to-label panel per spectrum."""
    plt = pyplot()
    styles = spectrum_style(methods)
    fig, axes = plt.subplots(2, len(spectrum_names), figsize=(5.5 * len(spectrum_names), 6), sharex=True, gridspec_kw={"height_ratios": [3, 1]}, squeeze=False)
    for col, name in enumerate(spectrum_names):
        ax, rax = axes[0, col], axes[1, col]
        sub = table[table.spectrum == name]
        for quantity, (colour, style, label) in styles.items():
            q = sub[sub.quantity == quantity]
            if q.empty:
                continue
            ell = q.ell.to_numpy()
            factor = ell * (ell + 1) / (2 * np.pi)
            ax.errorbar(ell, factor * q.cl_mean, yerr=factor * q.cl_std, color=colour, ls=style, marker="o", ms=3, capsize=2, label=label)
        if name in theory:
            ell_t, cl_t = theory[name]
            ax.plot(ell_t, ell_t * (ell_t + 1) / (2 * np.pi) * cl_t, "k--", lw=1, label="CAMB x beam^2")
        ax.set_yscale("symlog", linthresh=1e-3)
        ax.set_ylabel(r"$D_\ell$ [$\mu K^2$]")
        ax.set_title(f"{title} {name}".strip())
        label_q = sub[sub.quantity == "label"]
        for quantity in methods:
            colour, name = method_style(quantity)
            q = sub[sub.quantity == quantity]
            if q.empty or label_q.empty:
                continue
            ratio = q.cl_mean.to_numpy() / label_q.cl_mean.to_numpy() - 1
            err = q.cl_error_of_mean.to_numpy() / np.abs(label_q.cl_mean.to_numpy())
            rax.errorbar(q.ell, ratio, yerr=err, color=colour, marker="o", ms=3, capsize=2, label=name)
        rax.axhline(0, color="k", lw=0.8)
        rax.set_yscale("symlog", linthresh=1.0)
        rax.set_xlabel(r"$\ell$")
        rax.set_ylabel("output / label - 1")
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, path, dpi=100)


def plot_transfer_residuals(table, theory: dict, methods, path, title="", ell_range=(100.0, 1000.0)) -> None:
    """Every method on one figure: per spectrum (rows: EE, BB or the scalar one), the transfer
    function output x label / label, the output power against the label and theory, and the
    residual power against lensing BB x beam^2 (the aim: residual BB below it in ell_range)."""
    plt = pyplot()
    names = [n for n in ("EE", "BB") if n in set(table.spectrum)] or sorted(set(table.spectrum))
    fig, axes = plt.subplots(len(names), 3, figsize=(15, 4.2 * len(names)), squeeze=False, sharex=True)
    lensing = theory.get("BB_lensing")
    for row, name in enumerate(names):
        sub = table[table.spectrum == name]
        label = sub[sub.quantity == "label"]
        ell = label.ell.to_numpy()
        dl = ell * (ell + 1) / (2 * np.pi)
        ax_t, ax_o, ax_r = axes[row]
        for m in methods:
            colour, mname = method_style(m)
            cross = sub[sub.quantity == f"{m}_x_label"].cl_mean.to_numpy()
            out = sub[sub.quantity == m]
            res = sub[sub.quantity == f"{m}_residual"]
            if cross.size:
                ax_t.plot(ell, cross / label.cl_mean.to_numpy(), color=colour, marker="o", ms=3, label=mname)
            if not out.empty:
                ax_o.errorbar(ell, dl * out.cl_mean, yerr=dl * out.cl_error_of_mean, color=colour, marker="o", ms=3, capsize=2, label=mname)
            if not res.empty:
                ax_r.errorbar(ell, dl * res.cl_mean, yerr=dl * res.cl_error_of_mean, color=colour, marker="o", ms=3, capsize=2, label=mname)
        ax_o.errorbar(ell, dl * label.cl_mean, yerr=dl * label.cl_error_of_mean, color="k", marker="s", ms=3, capsize=2, label="CMB label")
        if name in theory:
            ell_t, cl_t = theory[name]
            ax_o.plot(ell_t, ell_t * (ell_t + 1) / (2 * np.pi) * cl_t, "k--", lw=1, label="CAMB x beam^2")
        if lensing is not None:
            ell_t, cl_t = lensing
            for ax in (ax_o, ax_r) if name == "BB" else (ax_r,):
                ax.plot(ell_t, ell_t * (ell_t + 1) / (2 * np.pi) * cl_t, color="m", lw=2, alpha=0.7, label="lensing BB x beam^2")
        ax_t.axhline(1, color="k", lw=0.8)
        ax_t.axhline(0, color="0.6", lw=0.8)
        ax_t.set_ylim(-0.5, 1.5)
        ax_t.set_ylabel(f"transfer {name}: output x label / label")
        ax_o.set_yscale("log")
        ax_o.set_ylabel(rf"$D_\ell^{{{name}}}$ output [$\mu K^2$]")
        ax_r.set_yscale("log")
        ax_r.set_ylabel(rf"$D_\ell^{{{name}}}$ residual (output - label) [$\mu K^2$]")
        for ax in (ax_t, ax_o, ax_r):
            xlim = (0.0, 1.05 * ell.max())
            ax.axvspan(*ell_range, color="0.93", zorder=-10)
            ax.set_xlim(*xlim)  # the shaded aim range must not stretch the axis beyond the bins
            ax.set_title(f"{title} {name}".strip(), fontsize=10)
        for ax in axes[row]:
            ax.legend(fontsize=7)
    for ax in axes[-1]:
        ax.set_xlabel(r"$\ell$")
    fig.tight_layout()
    save_figure(fig, path, dpi=100)


def plot_prediction_examples(panels: dict, path, n: int = 3, title="") -> None:
    """Rows of patches; panels maps a column name to an (N, H, W[, 1]) array in uK_CMB."""
    plt = pyplot()
    n = min(n, len(next(iter(panels.values()))))
    names = list(panels)
    fig, axes = plt.subplots(n, len(names), figsize=(2.4 * len(names), 2.4 * n), squeeze=False)
    scale_from = "label" if "label" in panels else names[0]
    for row in range(n):
        lim = np.max(np.abs(panels[scale_from][row])) or 1.0
        for col, name in enumerate(names):
            img = np.asarray(panels[name][row]).squeeze()
            ax = axes[row, col]
            # One colour scale per row (the label's), so outputs and residuals read against the CMB.
            im = ax.imshow(img, origin="lower", cmap="RdBu_r", vmin=-lim, vmax=lim)
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(name, fontsize=9)
        fig.colorbar(im, ax=axes[row, -1], fraction=0.046, pad=0.02)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    save_figure(fig, path, dpi=90)


def plot_planck_comparison(table, path, title="") -> None:
    """CENN on the real sky against Commander: per spectrum (columns EE, BB), D_ell of every quantity
    of :data:`cmbnn.realsky.COMPARISON_QUANTITIES` (top) and the ratios per bin with a +-5% band (bottom)."""
    plt = pyplot()
    styles = {
        "cenn_hm_cross": ("C3", "CENN HM1 x HM2"),
        "cenn": ("C3", "CENN full (auto)"),
        "commander": ("k", "Commander"),
        "smica": ("0.5", "SMICA"),
        "cenn_minus_commander": ("C0", "CENN - Commander"),
        "noise_bias": ("C2", "CENN noise bias"),
        "theory_lcdm": ("m", "LCDM x beam^2"),
    }
    ratio_styles = {
        "ratio_cenn_hm_cross_to_commander": ("C3", "CENN HM cross / Commander"),
        "ratio_cenn_x_commander_to_commander": ("C1", "CENN x Commander / Commander"),
        "ratio_smica_to_commander": ("0.5", "SMICA / Commander"),
    }
    names = [n for n in ("EE", "BB") if n in set(table.spectrum)]
    fig, axes = plt.subplots(2, len(names), figsize=(6.5 * len(names), 8), squeeze=False, sharex="col", gridspec_kw={"height_ratios": [2, 1]})
    for col, name in enumerate(names):
        sub = table[table.spectrum == name]
        ax, ax_r = axes[0, col], axes[1, col]
        for quantity, (colour, label) in styles.items():
            rows = sub[sub.quantity == quantity]
            if rows.empty:
                continue
            ell = rows.ell.to_numpy()
            dl = ell * (ell + 1) / (2 * np.pi)
            style = dict(ls="--", marker="") if quantity in ("cenn", "theory_lcdm") else dict(marker="o", ms=3)
            values = dl * rows.value.to_numpy()
            # Differences and noise bias can be negative in a bin: plot |D_ell| on the log axis, open markers.
            ax.errorbar(ell, np.abs(values), yerr=dl * rows.error.to_numpy(), color=colour, capsize=2, label=label, **style)
        ax.set_yscale("log")
        ax.set_ylabel(rf"$|D_\ell^{{{name}}}|$ [$\mu K^2$]")
        ax.set_title(f"{title} {name}".strip(), fontsize=10)
        ax.legend(fontsize=7)
        for quantity, (colour, label) in ratio_styles.items():
            rows = sub[sub.quantity == quantity]
            if not rows.empty:
                ax_r.errorbar(rows.ell, rows.value, yerr=rows.error, color=colour, marker="o", ms=3, capsize=2, label=label)
        ax_r.axhspan(0.95, 1.05, color="0.9", zorder=-10, label="+-5%")
        ax_r.axhline(1.0, color="k", lw=0.8)
        ax_r.set_ylim(0.0, 2.0)
        ax_r.set_ylabel("ratio")
        ax_r.set_xlabel(r"$\ell$")
        ax_r.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, path, dpi=100)
