"""Figures of preparatory-network runs (matplotlib, Agg backend, PNG files).

- `learning_curve`: loss against step, log scale, with the Adam -> L-BFGS stage boundary and the
  steps where J was unstable (the stability penalty's spikes) marked and explained;
- `activity_decay`: rms activity sqrt(h(t)) (see `tcnet_plugins.preparatory.analysis`) with decay times marked;
- `spectra`: eigenvalues of J in the complex plane with the unit circle and the stability line
  Re(lambda) = 1;
- `readout_traces`: y(t) = w^T x(t) from one initial state, one curve per network (e.g. per beta).

Each takes labelled networks or histories and a path, and returns the path written.
"""
import textwrap

import numpy as np

from tcnet.plot import plt, save_figure
from tcnet_plugins.preparatory.analysis import decay_time, relative_sq_norm

FRACTIONS = (0.05, 0.01)


UNSTABLE_CAPTION = ("x: a step where J had an eigenvalue with real part >= 1 (unstable). Adam moves every parameter "
                    "by about its learning rate however steep the loss, so a step can cross the stability "
                    "boundary; there the stability term (weight alpha) is the loss, spiking by ~alpha, and its "
                    "gradient brings the next step back. Not a defect: the penalty working.")


def learning_curve(histories: dict, path):
    """histories: label -> (step, stage, loss) or (step, stage, loss, unstable) arrays, `unstable`
    the history column extra/decay_diverges (1 where J had an eigenvalue with real part >= 1). The
    first stage change is marked per curve, the unstable steps with x, explained in the caption."""
    fig, ax = plt.subplots(figsize=(6, 4.8))
    crossed = False
    for label, (step, stage, loss, *rest) in histories.items():
        (line,) = ax.semilogy(step, loss, label=label)
        change = np.flatnonzero(np.diff(stage) != 0)
        for k in change:
            ax.axvline((step[k] + step[k + 1]) / 2, color=line.get_color(), ls=":", lw=1)
        if rest:
            bad = np.asarray(rest[0]) == 1
            crossed |= bool(bad.any())
            ax.plot(np.asarray(step)[bad], np.asarray(loss)[bad], "x", color=line.get_color(), ms=7)
    caption = "\n\n" + textwrap.fill(UNSTABLE_CAPTION, 95) if crossed else ""  # in the x label: the layout keeps it
    ax.set(ylabel="loss", title="learning curve")
    ax.set_xlabel("step (dotted: Adam -> L-BFGS)" + caption, fontsize=None if not crossed else 8)
    ax.legend()
    return save_figure(fig, path, force=True)  # a demo's figures are regenerated


def activity_decay(networks: dict, path, t_max=None):
    """networks: label -> LinearDecay. Plots sqrt(h(t)) with t_5% and t_1% marked."""
    fig, ax = plt.subplots(figsize=(6, 4))
    times = {label: [decay_time(d, f) for f in FRACTIONS] for label, d in networks.items()}
    finite = [t for ts in times.values() for t in ts if np.isfinite(t)]
    tau = next(iter(networks.values())).config["tau"]
    t_max = t_max or 1.5 * max(finite, default=20 * tau)
    t = np.linspace(0, t_max, 400)
    for label, d in networks.items():
        (line,) = ax.semilogy(t, np.sqrt(relative_sq_norm(d, t)), label=label)
        for f, tf in zip(FRACTIONS, times[label]):
            if np.isfinite(tf):
                ax.plot([tf], [f], "o", color=line.get_color())
                ax.annotate(f"{tf * 1e3:.1f} ms", (tf, f), textcoords="offset points", xytext=(4, 4), fontsize=8)
    for f in FRACTIONS:
        ax.axhline(f, color="gray", ls=":", lw=1)
    ax.set(xlabel="t (s)", ylabel="rms ||x(t)|| / ||x(0)||", title="activity decay (x0 ~ N(0, I))")
    ax.legend()
    return save_figure(fig, path, force=True)  # a demo's figures are regenerated


def spectra(networks: dict, path):
    """networks: label -> LinearDecay. Eigenvalues of J with unit circle and Re(lambda) = 1."""
    fig, ax = plt.subplots(figsize=(5, 5))
    phi = np.linspace(0, 2 * np.pi, 400)
    ax.plot(np.cos(phi), np.sin(phi), color="k", lw=1, label="unit circle")
    ax.axvline(1.0, color="r", ls="--", lw=1, label="Re(lambda) = 1")
    for (label, d), marker in zip(networks.items(), ".ox+"):
        lam = d.current.lam
        ax.plot(lam.real, lam.imag, marker, ms=4, fillstyle="none", label=label)
    ax.set(xlabel="Re(lambda)", ylabel="Im(lambda)", title="eigenvalues of J")
    ax.set_aspect("equal")
    ax.legend(fontsize=7, loc="lower left", framealpha=0.8)
    return save_figure(fig, path, force=True)  # a demo's figures are regenerated


def readout_traces(networks: dict, path, seed=0, t_max=None):
    """networks: label -> LinearDecay. y(t) = w^T x(t) from one shared x0 ~ N(0, I)."""
    first = next(iter(networks.values()))
    x0 = first.sample_initial(1, seed)[0]
    t = np.linspace(0, t_max or 10 * first.config["tau"], 400)
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, d in networks.items():
        ax.plot(t, d.simulate(x0, t) @ d.arrays["w"], label=label)
    ax.set(xlabel="t (s)", ylabel="y = w^T x(t)", title="readout")
    ax.legend()
    return save_figure(fig, path, force=True)  # a demo's figures are regenerated
