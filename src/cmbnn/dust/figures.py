"""Figures of the dust VAE stage: samples, compared statistics, imputation, interpolation GIFs and
strips, the conditional model's response, the latent space and reconstructions.

Maps are standardised log intensities x = (log I - mean) / std (:func:`cmbnn.dust.vae.log_standardise`);
every panel of maps in one figure shares one colour scale, so that brightness differences between
rows (real against generated, truth against fill) are visible, not normalised away. Figures go
through :func:`cmbnn.plotting.save_figure` (atomic write, closed afterwards).
"""

from __future__ import annotations

import numpy as np

from cmbnn.io import atomic_output
from cmbnn.plotting import pyplot, save_figure

X_UNIT = "standardised log I"
MAP_CMAP = "inferno"
RESIDUAL_CMAP = "RdBu_r"
# Statistics of cmbnn.dust.statistics: axis labels with units.
STAT_LABELS = {
    "spectrum": r"$C_\ell$ [(%s)$^2$ sr]" % X_UNIT,
    "histogram": f"pixel density [1 / ({X_UNIT})]",
    "V0": "V0: area fraction above threshold",
    "V1": r"V1: boundary length / 4 area [pixel$^{-1}$]",
    "V2": r"V2: Euler characteristic / area [pixel$^{-2}$]",
    "moments": "per-patch moment of x",
    "mean_log": f"patch mean of x [{X_UNIT}]",
}


def _maps(x) -> np.ndarray:
    """(N, H, W[, 1]) or (H, W) -> float64 (N, H, W)."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 4 and x.shape[-1] == 1:
        x = x[..., 0]
    return x[None] if x.ndim == 2 else x


def _limits(*arrays) -> tuple[float, float]:
    """One colour range (0.5 and 99.5 percentiles) for all the maps shown together."""
    values = np.concatenate([np.asarray(a, dtype=np.float64)[np.isfinite(a)].ravel() for a in arrays])
    if values.size == 0:
        return -1.0, 1.0
    lo, hi = np.percentile(values, [0.5, 99.5])
    return (float(lo), float(hi)) if hi > lo else (float(lo) - 1.0, float(hi) + 1.0)


def _image(ax, img, vmin, vmax, cmap=MAP_CMAP):
    ax.set_xticks([])
    ax.set_yticks([])
    return ax.imshow(img, origin="lower", cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")


def _pixel_axes(axes) -> None:
    """Pixel units on the outer panels of an image grid (left column, bottom row)."""
    for ax in axes[-1, :]:
        ax.set_xlabel("x [pixel]", fontsize=8)
    for ax in axes[:, 0]:
        ax.set_ylabel(ax.get_ylabel() + ("\n" if ax.get_ylabel() else "") + "y [pixel]", fontsize=8)


def _colour_label(stats: dict | None) -> str:
    if not stats:
        return X_UNIT
    return f"{X_UNIT}: (log I - {stats['log_mean']:.3g}) / {stats['log_std']:.3g}"


def plot_samples(real, generated: dict, path, n_show: int = 4, stats: dict | None = None) -> None:
    """Real test patches (row 0) above patches of each generator (one row each, e.g. dust VAE,
    beta-VAE, cVAE, Gaussian), on one colour scale; ``stats`` (log_mean, log_std of
    :func:`cmbnn.dust.vae.log_standardise`) labels the colour bar with the conversion to log I."""
    plt = pyplot()
    rows = {"real (test)": _maps(real)} | {name: _maps(v) for name, v in generated.items()}
    n_show = min([n_show] + [len(v) for v in rows.values()])
    vmin, vmax = _limits(*(v[:n_show] for v in rows.values()))
    fig, axes = plt.subplots(len(rows), n_show, figsize=(2.2 * n_show + 1.2, 2.2 * len(rows)), squeeze=False, layout="constrained")
    for r, (name, maps) in enumerate(rows.items()):
        for c in range(n_show):
            im = _image(axes[r, c], maps[c], vmin, vmax)
        axes[r, 0].set_ylabel(name, fontsize=10)
    _pixel_axes(axes)
    fig.colorbar(im, ax=axes, fraction=0.03, pad=0.02, label=_colour_label(stats))
    fig.suptitle(f"Dust patches: real and generated (first {n_show} of each set)")
    save_figure(fig, path, dpi=90)


def _set_styles(names, reference: str) -> dict:
    """Colour and line style per set: the reference black, the Gaussian baseline grey dashed, the
    other classical generators (copula, scattering synthesis) dashed in colour."""
    styles, k = {}, 0
    for name in names:
        if name == reference:
            styles[name] = dict(color="k", ls="-", lw=2.0)
        elif name.lower() == "gaussian":
            styles[name] = dict(color="0.45", ls="--", lw=1.8)
        else:
            classical = any(word in name.lower() for word in ("copula", "scattering"))
            styles[name] = dict(color=f"C{k % 10}", ls="--" if classical else "-", lw=1.4)
            k += 1
    return styles


def plot_structure(features: dict, meta: dict, path, reference: str = "test") -> None:
    """Amplitude and structure (:func:`cmbnn.dust.structure.structure_features`) of every set:
    each patch's mean against its std, and on the per-patch standardised maps the band powers,
    the one-point histogram and the Minkowski functionals V0-V2 per threshold, each set as its
    mean with its +-1 std band across patches (the bands ForSE's overlap compares). The decoder
    means alone (prior z, fitted z) are left out: they are far from every other set."""
    plt = pyplot()
    names = [reference] + [n for n in features if n != reference and "prior" not in n and "fitted" not in n]
    styles = _set_styles(names, reference)
    edges = np.asarray(meta["hist_edges"])
    n_hist = edges.size - 1
    panels = [
        ("band powers", meta["ell"], r"$\ell$", r"log$_{10}$ $C_\ell$ of the standardised patch", lambda v: v),
        ("one-point", 0.5 * (edges[1:] + edges[:-1]), "pixel value [patch std]", "pixel density", lambda v: v[:, -n_hist:]),
        ("V0", meta["thresholds"], "threshold [patch std]", "V0: area fraction", lambda v: v),
        ("V1", meta["thresholds"], "threshold [patch std]", r"V1 [pixel$^{-1}$]", lambda v: v),
        ("V2", meta["thresholds"], "threshold [patch std]", r"V2 [pixel$^{-2}$]", lambda v: v),
    ]
    fig, axes = plt.subplots(2, 3, figsize=(16, 9))
    axes = axes.ravel()
    for name in names:
        mean, std = features[name]["amplitude"].T
        axes[0].scatter(mean, std, s=4 if name != reference else 8, alpha=0.6, color=styles[name]["color"], label=name)
    axes[0].set_xlabel(f"patch mean [{X_UNIT}]")
    axes[0].set_ylabel(f"patch std [{X_UNIT}]")
    axes[0].set_title("Amplitude (per patch)")
    for ax, (stat, xs, xlabel, ylabel, select) in zip(axes[1:], panels):
        for name in names:
            values = select(np.asarray(features[name][stat], dtype=np.float64))
            mean, std = values.mean(axis=0), values.std(axis=0)
            ax.plot(xs, mean, label=name, **styles[name])
            ax.fill_between(xs, mean - std, mean + std, color=styles[name]["color"], alpha=0.25 if name == reference else 0.08)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_title(f"{stat} (mean, 1$\\sigma$ band across patches)")
    axes[0].legend(fontsize=6, markerscale=2)
    fig.suptitle(f"Dust patches: amplitude, and structure of each patch standardised by its own mean and std ({len(features[reference]['amplitude'])} per set)")
    fig.tight_layout()
    save_figure(fig, path, dpi=80)


def plot_imputation(truth, masks, predictions: dict, path, n_show: int = 3) -> None:
    """Rows = patches; columns: truth, masked data, each method's filled patch, then each method's
    residual (fill - truth) in the hole. masks: (H, W) or (N, H, W), True = missing. Maps share one
    colour scale; the residuals share a symmetric one of the same width, so a residual reads against
    the map's contrast."""
    plt = pyplot()
    truth = _maps(truth)
    masks = np.broadcast_to(np.asarray(masks, dtype=bool), truth.shape)
    preds = {name: _maps(p) for name, p in predictions.items()}
    n_show = min(n_show, len(truth))
    vmin, vmax = _limits(truth[:n_show], *(p[:n_show] for p in preds.values()))
    half = (vmax - vmin) / 2
    columns = ["truth", "masked data"] + [f"{m} fill" for m in preds] + [f"{m} residual (hole)" for m in preds]
    fig, axes = plt.subplots(n_show, len(columns), figsize=(2.2 * len(columns) + 1.5, 2.3 * n_show), squeeze=False, layout="constrained")
    for r in range(n_show):
        hole = masks[r]
        panels = [truth[r], np.where(hole, np.nan, truth[r])] + [p[r] for p in preds.values()]
        for c, img in enumerate(panels):
            im_map = _image(axes[r, c], img, vmin, vmax)
        for k, p in enumerate(preds.values()):
            im_res = _image(axes[r, len(panels) + k], np.where(hole, p[r] - truth[r], np.nan), -half, half, RESIDUAL_CMAP)
        if hole.any() and not hole.all():
            for ax in axes[r, 2 : 2 + len(preds)]:
                ax.contour(hole.astype(float), levels=[0.5], colors="c", linewidths=0.8)
        axes[r, 0].set_ylabel(f"patch {r}")
    if preds:
        from matplotlib.lines import Line2D

        axes[0, 2].legend(handles=[Line2D([], [], color="c", lw=0.8, label="hole edge")], fontsize=7, loc="upper right")
    for c, name in enumerate(columns):
        axes[0, c].set_title(name, fontsize=9)
    _pixel_axes(axes)
    fig.colorbar(im_map, ax=axes[:, : 2 + len(preds)], location="bottom", shrink=0.6, label=f"x [{X_UNIT}]")
    if preds:
        fig.colorbar(im_res, ax=axes[:, 2 + len(preds) :], location="bottom", shrink=0.9, label=f"fill - truth [{X_UNIT}]")
    fig.suptitle("Dust imputation: hole filled by each method (masked pixels blank)")
    save_figure(fig, path, dpi=90)


def write_gif(frames, path, fps: int = 4, title: str = "Latent interpolation") -> None:
    """An animated GIF of frames (K, H, W) on one colour scale (PillowWriter), written to a
    temporary file beside ``path`` and renamed into place (:func:`cmbnn.io.atomic_output`)."""
    from matplotlib.animation import FuncAnimation, PillowWriter

    plt = pyplot()
    frames = _maps(frames)
    vmin, vmax = _limits(frames)
    fig, ax = plt.subplots(figsize=(4.2, 3.6))
    im = ax.imshow(frames[0], origin="lower", cmap=MAP_CMAP, vmin=vmin, vmax=vmax, interpolation="nearest")
    ax.set_xlabel("x [pixel]")
    ax.set_ylabel("y [pixel]")
    fig.colorbar(im, ax=ax, label=f"x [{X_UNIT}]")
    heading = ax.set_title(f"{title}: frame 1 / {len(frames)}", fontsize=9)

    def update(k):
        im.set_data(frames[k])
        heading.set_text(f"{title}: frame {k + 1} / {len(frames)}")
        return im, heading

    animation = FuncAnimation(fig, update, frames=len(frames), blit=False)
    with atomic_output(path) as tmp:
        animation.save(str(tmp), writer=PillowWriter(fps=fps))
    plt.close(fig)


def plot_strip(frames, path, titles=None, suptitle: str = "Latent interpolation") -> None:
    """One row of the K frames (e.g. a slerp between two encoded patches) on one colour scale."""
    plt = pyplot()
    frames = _maps(frames)
    k = len(frames)
    titles = list(titles) if titles is not None else [f"t = {t:.2f}" for t in np.linspace(0, 1, k)]
    vmin, vmax = _limits(frames)
    fig, axes = plt.subplots(1, k, figsize=(2.0 * k + 1.2, 2.6), squeeze=False, layout="constrained")
    for c in range(k):
        im = _image(axes[0, c], frames[c], vmin, vmax)
        axes[0, c].set_title(titles[c], fontsize=9)
    _pixel_axes(axes)
    fig.colorbar(im, ax=axes, fraction=0.03, pad=0.02, label=f"x [{X_UNIT}]")
    fig.suptitle(suptitle)
    save_figure(fig, path, dpi=90)


def _stat_label(stat: str) -> str:
    if stat in STAT_LABELS:
        return STAT_LABELS[stat]
    if stat.startswith("log10_power_ell"):
        return r"$\log_{10} C_{\ell=%s}$ [(%s)$^2$ sr]" % (stat[len("log10_power_ell") :], X_UNIT)
    return stat


def plot_conditional(table, path, label: str = "|b| (deg)") -> None:
    """The conditional model's response: per statistic (one panel each), the held-out patches' mean
    +- patch scatter (error bars) and the generated patches' mean +- std (line and band) against the
    condition. table columns: condition, statistic, generated_mean, generated_std, heldout_mean,
    heldout_std (:func:`cmbnn.dust.statistics.conditional_summary` columns as statistics), optionally
    latent (where the generated patches' z came from; one line each)."""
    plt = pyplot()
    stats = list(dict.fromkeys(table["statistic"]))
    fig, axes = plt.subplots(1, len(stats), figsize=(5.0 * len(stats), 4.0), squeeze=False)
    for ax, stat in zip(axes[0], stats):
        sub = table[table["statistic"] == stat].sort_values("condition")
        cond = sub["condition"].to_numpy(dtype=np.float64)
        ax.errorbar(cond, sub["heldout_mean"], yerr=sub["heldout_std"], color="k", marker="o", ms=4, capsize=3, ls="none", label="held-out patches (mean +- scatter)")
        # One line per latent source (a "latent" column: z from the prior, or from a fit to the encodings).
        groups = sub.groupby("latent", sort=False) if "latent" in sub else [(None, sub)]
        for k, (source, g) in enumerate(groups):
            gcond = g["condition"].to_numpy(dtype=np.float64)
            gen, gstd = g["generated_mean"].to_numpy(dtype=np.float64), g["generated_std"].to_numpy(dtype=np.float64)
            what = "generated" if source is None else f"generated, z from {source}"
            ax.plot(gcond, gen, color=f"C{3 + k}", marker="s", ms=3, label=f"{what} (mean)")
            ax.fill_between(gcond, gen - gstd, gen + gstd, color=f"C{3 + k}", alpha=0.2, label=f"{what} +- std")
        ax.set_xlabel(f"condition {label}")
        ax.set_ylabel(_stat_label(stat))
        ax.set_title(stat)
        ax.legend(fontsize=7)
    fig.suptitle("Conditional VAE: generated against held-out patches at each condition")
    fig.tight_layout()
    save_figure(fig, path, dpi=100)


def plot_latent(z, condition, path, label: str = "|b| (deg)") -> None:
    """The encoder means projected on their first two principal components (SVD of the centred
    latents), coloured by the condition: a smooth colour gradient means the latent space orders the
    patches by it."""
    plt = pyplot()
    z = np.asarray(z, dtype=np.float64)
    z = z - z.mean(axis=0)
    _, s, vt = np.linalg.svd(z, full_matrices=False)
    pcs = z @ vt[:2].T
    if pcs.shape[1] < 2:
        pcs = np.column_stack([pcs, np.zeros(len(pcs))])
    share = s**2 / max(np.sum(s**2), np.finfo(float).tiny)
    share = np.concatenate([share, np.zeros(2)])[:2]
    fig, ax = plt.subplots(figsize=(6, 5))
    points = ax.scatter(pcs[:, 0], pcs[:, 1], c=np.asarray(condition, dtype=np.float64), cmap="viridis", s=12, label=f"patches (N = {len(z)})")
    fig.colorbar(points, ax=ax, label=label)
    ax.set_xlabel(f"PC 1 [latent units] ({100 * share[0]:.0f}% of variance)")
    ax.set_ylabel(f"PC 2 [latent units] ({100 * share[1]:.0f}% of variance)")
    ax.set_title("Latent means, first two principal components")
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path, dpi=100)


def plot_reconstructions(x, recon, path, n_show: int = 4) -> None:
    """Input patches (top row) and their reconstructions (bottom row) on one colour scale."""
    plt = pyplot()
    x, recon = _maps(x), _maps(recon)
    n_show = min(n_show, len(x), len(recon))
    vmin, vmax = _limits(x[:n_show], recon[:n_show])
    fig, axes = plt.subplots(2, n_show, figsize=(2.2 * n_show + 1.2, 4.6), squeeze=False, layout="constrained")
    for c in range(n_show):
        im = _image(axes[0, c], x[c], vmin, vmax)
        _image(axes[1, c], recon[c], vmin, vmax)
    axes[0, 0].set_ylabel("input")
    axes[1, 0].set_ylabel("reconstruction")
    _pixel_axes(axes)
    fig.colorbar(im, ax=axes, fraction=0.03, pad=0.02, label=f"x [{X_UNIT}]")
    fig.suptitle("Dust VAE reconstructions")
    save_figure(fig, path, dpi=90)
