"""Figures of a SIMPL run (PNG, Agg backend): true vs. decoded trajectories, tuning curves before
and after, and the metrics per iteration."""
from pathlib import Path

import numpy as np

from tcnet.plot import plt


def trajectories(time, truth, behaviour, latent, path, window=60.0):
    """x and y against time over the first `window` seconds: truth, behaviour, final latent."""
    n = min(len(time), int(round(window / (time[1] - time[0]))))
    fig, axes = plt.subplots(2, 1, figsize=(9, 5), sharex=True)
    for i, ax in enumerate(axes):
        ax.plot(time[:n], truth[:n, i], "k", lw=1.5, label="true")
        ax.plot(time[:n], behaviour[:n, i], color="tab:gray", lw=1, label="behaviour (initial latent)")
        ax.plot(time[:n], latent[:n, i], color="tab:red", lw=1, label="SIMPL latent")
        ax.set_ylabel(f"{'xy'[i]} (m)")
    axes[0].legend(loc="upper right", fontsize=8)
    axes[1].set_xlabel("time (s)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def tuning_curves(true_fields, true_grid, before, after, path, cells=(0, 1, 2, 3)):
    """Rows: cells; columns: true field, fitted at iteration 0 (behaviour), fitted at the end.
    `before` and `after` are (fields, grid) pairs."""
    cells = [c for c in cells if c < true_fields.shape[0]]
    fig, axes = plt.subplots(len(cells), 3, figsize=(7.5, 2.4 * len(cells)), squeeze=False)
    panels = [("true", true_fields, true_grid), ("iteration 0", *before), ("final", *after)]
    for r, c in enumerate(cells):
        for j, (title, fields, grid) in enumerate(panels):
            ax = axes[r, j]
            ax.pcolormesh(grid[0], grid[1], fields[c].T, shading="auto", cmap="inferno")
            ax.set_xlim(0, 1)
            ax.set_ylim(0, 1)
            ax.set_aspect("equal")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(title)
        axes[r, 0].set_ylabel(f"cell {c}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def metrics(steps, columns, path):
    """One panel per metric against the iteration (step)."""
    fig, axes = plt.subplots(1, len(columns), figsize=(3.2 * len(columns), 3))
    x = [s.step for s in steps]
    for ax, key in zip(np.atleast_1d(axes), columns):
        ax.plot(x, [s.extra[key] for s in steps], "o-")
        ax.set_xlabel("iteration")
        ax.set_title(key)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def all_figures(result, folder) -> list:
    """The three figures of a tcnet RunResult of SIMPL, written to `folder`; their paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    data = result.final.data
    first, last = result.initial.state(), result.final.state()
    paths = [folder / "simpl_trajectories.png", folder / "simpl_tuning_curves.png", folder / "simpl_metrics.png"]
    trajectories(data["time"], data["Xt"], data["Xb"], result.final.arrays["latent"], paths[0])
    tuning_curves(data["fields"], (data["field_x"], data["field_y"]), (first.fields, first.grid),
                  (last.fields, last.grid), paths[1])
    metrics(result.history.steps, ("latent_error_cm", "val_ll", "bits_per_spike"), paths[2])
    return [str(p) for p in paths]
