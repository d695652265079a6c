"""Figures of the inpainting stage (CosmoVAE vs the Gaussian conditional mean)."""

from __future__ import annotations

import numpy as np

from cmbnn.plotting import pyplot, save_figure


def pick_examples(mask: np.ndarray, n: int) -> np.ndarray:
    """Indices of the n patches with the largest hole fractions (most to look at)."""
    frac = np.asarray(mask, dtype=np.float64).reshape(len(mask), -1).mean(axis=1)
    return np.argsort(-frac, kind="stable")[:n]


# More than 8 parameters: one array per column of the figure, then the figure's options.
def plot_inpainting_examples(sim, mask, vae_mean, vae_std, gauss_mean, path, n: int = 3, gauss_std=None, title: str = "") -> None:
    """Rows: example patches; columns: truth, masked input, CosmoVAE mean, its std, Gaussian
    conditional mean, and the residuals (method - truth) of both. uK_CMB."""
    plt = pyplot()
    idx = pick_examples(mask, n)
    sim, vae_mean, gauss_mean, vae_std = (np.asarray(a)[..., 0] if np.asarray(a).ndim == 4 else np.asarray(a) for a in (sim, vae_mean, gauss_mean, vae_std))
    columns = ["truth", "masked input", "CosmoVAE mean", "CosmoVAE std", "Gaussian cond. mean", "CosmoVAE - truth", "Gaussian - truth"]
    fig, axes = plt.subplots(len(idx), len(columns), figsize=(2.3 * len(columns), 2.3 * len(idx) + 0.4), squeeze=False)
    for row, i in enumerate(idx):
        lim = float(np.abs(sim[i]).max()) or 1.0
        masked = np.where(mask[i] > 0, np.nan, sim[i])
        res_v, res_g = vae_mean[i] - sim[i], gauss_mean[i] - sim[i]
        rlim = float(max(np.abs(res_v).max(), np.abs(res_g).max())) or 1.0
        panels = [
            (sim[i], "RdBu_r", -lim, lim), (masked, "RdBu_r", -lim, lim), (vae_mean[i], "RdBu_r", -lim, lim),
            (np.where(mask[i] > 0, vae_std[i], np.nan), "viridis", 0, float(np.nanmax(np.where(mask[i] > 0, vae_std[i], np.nan))) if mask[i].any() else 1.0),
            (gauss_mean[i], "RdBu_r", -lim, lim), (res_v, "RdBu_r", -rlim, rlim), (res_g, "RdBu_r", -rlim, rlim),
        ]
        for col, (img, cmap, lo, hi) in enumerate(panels):
            ax = axes[row, col]
            im = ax.imshow(img, origin="lower", cmap=cmap, vmin=lo, vmax=hi)
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(columns[col], fontsize=9)
            fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03).ax.tick_params(labelsize=6)
        axes[row, 0].set_ylabel(f"patch {i}\nholes {100 * mask[i].mean():.1f}%", fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    save_figure(fig, path, dpi=90)


def plot_inpainting_spectra(table, path, title: str = "") -> None:
    """D_ell of the inpainted patches per method vs the truth (top) and of the residual (bottom).
    table: long table with columns method, quantity (output | residual | truth), ell, cl_mean, cl_error_of_mean."""
    plt = pyplot()
    fig, (ax, ax_r) = plt.subplots(2, 1, figsize=(6.5, 7), sharex=True)
    for k, (method, rows) in enumerate(table.groupby("method", sort=False)):
        colour = f"C{k}"
        for quantity, axis, style in (("output", ax, "-"), ("residual", ax_r, "-")):
            sel = rows[rows.quantity == quantity]
            if len(sel):
                ell = sel.ell.to_numpy()
                dl = ell * (ell + 1) / (2 * np.pi)
                axis.errorbar(ell, dl * sel.cl_mean, dl * sel.cl_error_of_mean, fmt=style, color=colour, label=method, capsize=2)
    truth = table[table.quantity == "truth"].drop_duplicates("ell")
    ell = truth.ell.to_numpy()
    ax.plot(ell, ell * (ell + 1) / (2 * np.pi) * truth.cl_mean, "k--", label="truth")
    ax.set_ylabel(r"$D_\ell$ of the inpainted patches [$\mu K^2$]")
    ax_r.set_ylabel(r"$D_\ell$ of (inpainted - truth) [$\mu K^2$]")
    ax_r.set_yscale("log")
    ax_r.set_xlabel(r"$\ell$")
    ax.legend(fontsize=8)
    ax.set_title(title)
    fig.tight_layout()
    save_figure(fig, path, dpi=90)


def plot_fullsky_inpainting(maps: dict, mask, spectra, path, rot=None, nside_out: int = 128, xsize: int = 400, reso_arcmin: float = 6.0) -> None:
    """Gnomonic views about ``rot`` (lon, lat) of truth, masked (the inpainted region), and each inpainted map (uK_CMB),
    and the anafast D_ell of each map (and of its residual) vs the truth.
    maps: {name: HEALPix map}, the first is the truth; spectra: {name: C_ell from ell = 0}."""
    import healpy as hp

    plt = pyplot()
    names = list(maps)
    truth = maps[names[0]]
    fig = plt.figure(figsize=(4 * (len(names) + 1), 8))
    views = [(names[0], truth), ("masked", np.where(mask > 0, hp.UNSEEN, truth))] + [(n, maps[n]) for n in names[1:]]
    lim = float(np.percentile(np.abs(truth), 99.5))
    for k, (name, m) in enumerate(views):
        hp.gnomview(m, rot=rot, xsize=xsize, reso=reso_arcmin, title=name, sub=(2, len(views), k + 1), fig=fig.number, min=-lim, max=lim, cmap="RdBu_r", unit="uK_CMB", notext=True)
    ax = fig.add_subplot(2, 2, 3)
    ax_r = fig.add_subplot(2, 2, 4)
    for k, (name, cl) in enumerate(spectra.items()):
        ell = np.arange(len(cl))
        dl = ell * (ell + 1) * cl / (2 * np.pi)
        target = ax_r if name.endswith("residual") else ax
        target.plot(ell[2:], dl[2:], color="k" if k == 0 else f"C{k}", lw=1, label=name)
    for a, label in ((ax, r"$D_\ell$ [$\mu K^2$]"), (ax_r, r"$D_\ell$ of map - truth [$\mu K^2$]")):
        a.set_xlabel(r"$\ell$")
        a.set_ylabel(label)
        a.set_yscale("log")
        a.legend(fontsize=8)
    fig.subplots_adjust(wspace=0.3, hspace=0.3)
    save_figure(fig, path, dpi=80)


def plot_hole_power(table, path, title: str = "") -> None:
    """Hole power per ell bin of each method over the truth's (one panel per hole class), with the
    bootstrap 68% band; 1 is the truth; the +-15% band is the target for posterior samples."""
    plt = pyplot()
    classes = [c for c in ("all", "source", "galactic") if c in set(table.hole_class)]
    fig, axes = plt.subplots(1, len(classes), figsize=(4.2 * len(classes), 3.6), squeeze=False, sharey=True)
    for ax, cls in zip(axes[0], classes):
        sub = table[table.hole_class == cls]
        for method, rows in sub.groupby("method", sort=False):
            ell = 0.5 * (rows.ell_lo.to_numpy() + rows.ell_hi.to_numpy())
            line = ax.plot(ell, rows.ratio, marker="o", ms=3, label=method)[0]
            ax.fill_between(ell, rows.ratio_lo, rows.ratio_hi, color=line.get_color(), alpha=0.2)
        ax.axhspan(0.85, 1.15, color="0.85", zorder=0)
        ax.axhline(1.0, color="k", lw=0.8)
        ax.set_xlabel(r"$\ell$")
        ax.set_title(f"{cls} holes ({int(sub.n_patches.iloc[0])} patches)")
    axes[0, 0].set_ylabel("hole power / truth's")
    axes[0, 0].legend(fontsize=7)
    if title:
        fig.suptitle(title)
    save_figure(fig, path)
