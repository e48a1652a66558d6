"""Figures of a fitted SIMPL model (PNG, Agg backend): behaviour, truth (when known) and the fitted
latent against time; tuning curves at iteration 0 and at the end; the metrics per iteration."""
from pathlib import Path

import numpy as np

from tcnet.plot import plt, save_figure

NAMES = ("simpl_trajectories.png", "simpl_tuning_curves.png", "simpl_metrics.png")




def trajectories(time, behaviour, latent, truth, path, window=60.0, force=False):
    """Each latent coordinate against time over the first `window` seconds."""
    n = int(np.searchsorted(time, time[0] + window))
    dims = latent.shape[1]
    fig, axes = plt.subplots(dims, 1, figsize=(9, 2.5 * dims), sharex=True, squeeze=False)
    for i, ax in enumerate(axes[:, 0]):
        if truth is not None:
            ax.plot(time[:n], truth[:n, i], "k", lw=1.5, label="true")
        ax.plot(time[:n], behaviour[:n, i], color="tab:gray", lw=1, label="behaviour (initial latent)")
        ax.plot(time[:n], latent[:n, i], color="tab:red", lw=1, label="SIMPL latent")
        ax.set_ylabel(f"coordinate {i}")
    axes[0, 0].legend(loc="upper right", fontsize=8)
    axes[-1, 0].set_xlabel("time (s)")
    save_figure(fig, path, force=force, dpi=110)


def tuning_curves(before, after, path, cells=(0, 1, 2, 3), force=False):
    """Rows: cells; columns: fitted at iteration 0 (behaviour) and at the end. `before` and
    `after` are (fields, axes) pairs; 1-D fields are drawn as curves, 2-D ones as maps."""
    fields = before[0]
    cells = [c for c in cells if c < fields.shape[0]]
    fig, axes = plt.subplots(len(cells), 2, figsize=(6, 2.4 * len(cells)), squeeze=False)
    for r, c in enumerate(cells):
        for j, (title, (f, grid)) in enumerate([("iteration 0", before), ("final", after)]):
            ax = axes[r, j]
            if f.ndim == 2:
                ax.plot(grid[0], f[c])
            else:
                ax.pcolormesh(grid[0], grid[1], f[c].T, shading="auto", cmap="inferno")
                ax.set_aspect("equal")
            if r == 0:
                ax.set_title(title)
        axes[r, 0].set_ylabel(f"cell {c}")
    save_figure(fig, path, force=force, dpi=110)


def metrics(history, columns, path, force=False):
    """One panel per metric against the iteration."""
    fig, axes = plt.subplots(1, len(columns), figsize=(3.2 * len(columns), 3))
    for ax, key in zip(np.atleast_1d(axes), columns):
        ax.plot(range(len(history)), [h[key] for h in history], "o-")
        ax.set_xlabel("iteration")
        ax.set_title(key)
    save_figure(fig, path, force=force, dpi=110)


def all_figures(model, folder, force=False) -> list:
    """The three figures of a fitted `SIMPL` model, written to `folder` (existing files replaced
    only with `force`); their paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    net = model.network_
    first = model.result_.initial.state()
    paths = [folder / name for name in NAMES]
    trajectories(net.data["time"], net.data["behaviour"], model.latent_, net.data.get("truth"), paths[0],
                 force=force)
    tuning_curves((first.fields, first.axes), (model.fields_, model.axes_), paths[1], force=force)
    columns = [k for k in ("latent_error", "val_ll", "bits_per_spike") if k in model.history_[0]]
    metrics(model.history_, columns, paths[2], force=force)
    return [str(p) for p in paths]
