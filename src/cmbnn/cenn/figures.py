"""CENN's figures: spectra of every method against theory, transfer and residual, example
predictions beside each baseline, and the real-sky comparison with Planck's CMB products."""

from __future__ import annotations

import numpy as np

from cmbnn.plotting import method_style, pyplot, save_figure, spectrum_style


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
    of :data:`cmbnn.cenn.realsky.COMPARISON_QUANTITIES` (top) and the ratios per bin with a +-5% band (bottom)."""
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
