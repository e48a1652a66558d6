"""Figures of rate networks (matplotlib, PNG): the fixed and slow points of a network in the top
principal components of its task trajectories, with their unstable directions (Sussillo & Barak
2013, Fig. 3 style)."""
import numpy as np

from tcnet.plot import plt, save_figure


def principal_axes(x, k=2):
    """(mean (N,), axes (k, N)): the top-k principal axes of the states x (..., N)."""
    flat = np.asarray(x, dtype=float).reshape((-1, np.shape(x)[-1]))
    mean = flat.mean(axis=0)
    _, _, vt = np.linalg.svd(flat - mean, full_matrices=False)
    return mean, vt[:k]


def plot_fixed_points(trajectories, points, path, length=0.5, force=True):
    """Trajectories (T, C, N) and a tcnet.fixedpoints.FixedPoints in the top two principal
    components of the trajectories: stable points filled, unstable open, slow points grey, each
    unstable direction a segment of `length` (state units) both ways. Returns the points'
    projections (P, 2). An existing `path` is replaced only with `force`."""
    mean, axes = principal_axes(trajectories)
    fig, ax = plt.subplots(figsize=(5, 5))
    for c in range(np.shape(trajectories)[1]):
        pc = (np.asarray(trajectories)[:, c] - mean) @ axes.T
        ax.plot(pc[:, 0], pc[:, 1], color="0.7", lw=0.8)
    proj = (points.x - mean) @ axes.T if len(points.x) else np.zeros((0, 2))
    for k, (p, stable, fixed) in enumerate(zip(proj, points.stable, points.fixed)):
        color = "k" if fixed else "0.5"
        ax.plot(*p, "o", color=color, mfc=color if stable else "white", ms=7, zorder=3)
        for v in points.unstable_directions(k):
            seg = np.array([points.x[k] - length * v, points.x[k] + length * v])
            seg = (seg - mean) @ axes.T
            ax.plot(seg[:, 0], seg[:, 1], color="tab:red", lw=1.5)
    ax.set_xlabel("PC 1")
    ax.set_ylabel("PC 2")
    ax.set_title("fixed points (filled: stable; red: unstable directions)")
    save_figure(fig, path, force=force)
    return proj
