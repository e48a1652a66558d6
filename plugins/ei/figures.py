"""Figures of the E/I study (matplotlib, PNG files), each from `tcnet_plugins.ei.study`'s numbers
or from the model itself.

The figures `tcnet ei-study` writes to its output folder: per mode and set, rates and weights
against steps for every rule from the preset's W (ei_<mode>_trajectories_<set>.png) and the (W_EE,
W_IE) plane with the set-point W_EI, W_II and the converged end points
(ei_<mode>_regions_<set>.png); within-trial E/I traces with the kick (ei_trial_traces.png);
learning curves of rates and weights across trials of the published runs (ei_learning_curves.png);
the paradoxical response (ei_paradoxical_response.png); the phase plane with both nullclines and
every fixed point (ei_phase_plane.png).

Each takes what it draws and a path, and writes the figure there (replacing an older one).
"""
import numpy as np
from matplotlib.colors import ListedColormap
from matplotlib.patches import Patch

from tcnet.plot import plt, save_figure
from tcnet_plugins.ei import model as ei
from tcnet_plugins.ei.trials import PROTOCOLS, Trial, integrate


def plot_trajectories(res, preset, path, mode="qss"):
    p = ei.PRESETS[preset]["params"]
    rules = list(res["rules"])
    fig, axes = plt.subplots(len(rules), 2, figsize=(10, 2.2 * len(rules)), sharex=True, squeeze=False)
    for row, rule in zip(axes, rules):
        path_ = res["rules"][rule]["trajectory"]
        steps = np.arange(1, len(path_) + 1)  # step + 1, for the log axis
        row[0].plot(steps, path_[:, 0], label="E")
        row[0].plot(steps, path_[:, 1], label="I")
        row[0].axhline(p["E_set"], color="C0", ls=":")
        row[0].axhline(p["I_set"], color="C1", ls=":")
        row[0].set_ylabel(rule)
        for j, lab in enumerate(ei.WEIGHTS):
            row[1].plot(steps, path_[:, 2 + j], label=lab)
    axes[0, 0].legend(loc="best", fontsize=8)
    axes[0, 1].legend(loc="best", fontsize=8)
    axes[0, 0].set_title(f"{preset}: {'QSS' if mode == 'qss' else 'trial'} rates")
    axes[0, 1].set_title("weights")
    for ax in axes.ravel():
        ax.set_xscale("log")
    axes[-1, 0].set_xlabel("step + 1" if mode == "qss" else "trial + 1")
    axes[-1, 1].set_xlabel("step + 1" if mode == "qss" else "trial + 1")
    save_figure(fig, path, force=True, dpi=110)


def plot_regions(res, preset, path, grid=300):
    p = ei.PRESETS[preset]["params"]
    ends = [np.array(r["end_points"]).reshape(-1, 2) for r in res["rules"].values()]
    hi = 3.0 * np.array(ei.PRESETS[preset]["W"])[[0, 2]]  # the plane up to 3x the preset's W_EE, W_IE
    outside = sum(int(np.sum(np.any(pts > hi, axis=1))) for pts in ends)
    W_EE, W_IE = np.meshgrid(np.linspace(0, hi[0], grid), np.linspace(0, hi[1], grid))
    W_EI, W_II = ei.set_point_weights(W_EE, W_IE, p)
    W = np.stack([W_EE, W_EI, W_IE, W_II], axis=-1)
    valid = (W_EI > 0) & (W_II > 0)
    stable = valid & ei.stable_up(W, p)
    paradox = stable & (ei.paradoxical_coefficient(W, p) > 0)
    region = np.where(paradox, 3, np.where(stable, 2, np.where(valid, 1, 0)))
    fig, ax = plt.subplots(figsize=(6.5, 5))
    cmap = ListedColormap(["white", "#f4cccc", "#cfe2f3", "#d9ead3"])
    ax.pcolormesh(W_EE, W_IE, region, cmap=cmap, vmin=-0.5, vmax=3.5, shading="auto")
    for k, (rule, pts) in enumerate(zip(res["rules"], ends)):
        if len(pts):
            ax.scatter(pts[:, 0], pts[:, 1], s=8, color=f"C{k}", label=rule)
    handles = [Patch(facecolor=c, edgecolor="grey", label=l) for c, l in
               zip(cmap.colors, ["no set point (W_EI or W_II < 0)", "W_EI, W_II > 0, unstable",
                                 "stable, non-paradoxical", "stable, paradoxical"])]
    ax.legend(handles=handles + ax.get_legend_handles_labels()[0], fontsize=7, loc="upper left")
    ax.set_xlabel("W_EE")
    ax.set_ylabel("W_IE")
    ax.set_xlim(0, hi[0])
    ax.set_ylim(0, hi[1])
    ax.set_title(f"{preset}: set-point W_EI, W_II; converged end points ({outside} outside)", fontsize=9)
    save_figure(fig, path, force=True, dpi=110)


def _published_trial():
    return Trial.from_settings("ei-study", PROTOCOLS["soldado2022"])


def plot_trial_traces(run, path, which=(0, 100, 500, -1)):
    """Within-trial E and I of the published run at a few trials (its weights then; noise from
    trial 0's state), with the kick marked."""
    p = ei.PRESETS["paradoxical"]["params"]
    trial = _published_trial()
    trials = [k % len(run["path"]) for k in which]
    fig, axes = plt.subplots(1, len(trials), figsize=(3.2 * len(trials), 3), sharey=True, squeeze=False)
    t = np.arange(1, trial.steps(trial.length) + 1) * trial.dt
    for ax, k in zip(axes[0], trials):
        _, _, r = trial.run(run["path"][k, 2:], p, index=k, record=True)
        ax.plot(t, r[:, 0], color="C2", label="E")
        ax.plot(t, r[:, 1], color="C3", label="I")
        ax.axvspan(trial.kick_onset, trial.kick_onset + trial.kick_duration, color="grey", alpha=0.3, label="kick")
        ax.axvspan(trial.length - trial.average, trial.length, color="C0", alpha=0.08, label="averaged")
        ax.axhline(p["E_set"], color="C2", ls=":")
        ax.axhline(p["I_set"], color="C3", ls=":")
        ax.set_title(f"trial {k}", fontsize=9)
        ax.set_xlabel("t [ms]")
    axes[0, 0].set_ylabel("rate [Hz]")
    axes[0, 0].legend(fontsize=7)
    fig.suptitle(f"published protocol, seed {run['seed']}: E/I within trials", fontsize=10)
    save_figure(fig, path, force=True, dpi=110)


def plot_learning_curves(runs, path):
    """The published runs: low-passed rates and the four weights against trials, every seed."""
    fig, (ax_r, ax_w) = plt.subplots(1, 2, figsize=(10, 3.6))
    for i, run in enumerate(runs):
        k = np.arange(len(run["path"]))
        label = i == 0
        ax_r.plot(k, run["path"][:, 0], color="C2", lw=0.8, label="E" if label else None)
        ax_r.plot(k, run["path"][:, 1], color="C3", lw=0.8, label="I" if label else None)
        for j, name in enumerate(ei.WEIGHTS):
            ax_w.plot(k, run["path"][:, 2 + j], color=f"C{j}", lw=0.8, label=name if label else None)
    ax_r.axhline(5.0, color="C2", ls=":")
    ax_r.axhline(14.0, color="C3", ls=":")
    ax_r.set(xlabel="trial", ylabel="rate the rule sees [Hz]", title=f"rates, {len(runs)} noise seeds")
    ax_w.set(xlabel="trial", ylabel="weight", title="weights")
    ax_r.legend(fontsize=8)
    ax_w.legend(fontsize=8)
    save_figure(fig, path, force=True, dpi=110)


def plot_paradoxical_response(path, delta=2.0, t_step=300.0, T=800.0):
    """Each preset at its set-point weights, in its Up state; at t_step the drive to I rises by
    `delta` (Theta_I -> Theta_I - delta). Paradoxical set: I falls; non-paradoxical: I rises."""
    fig, axes = plt.subplots(1, len(ei.PRESETS), figsize=(5 * len(ei.PRESETS), 3.4), squeeze=False)
    for ax, preset in zip(axes[0], ei.PRESETS):
        p = ei.PRESETS[preset]["params"]
        W_EE, W_IE = ei.PRESETS[preset]["W"][0], ei.PRESETS[preset]["W"][2]
        W_EI, W_II = ei.set_point_weights(W_EE, W_IE, p)
        W = np.array([W_EE, W_EI, W_IE, W_II])
        before = np.linspace(0.0, t_step, 301)
        after = np.linspace(t_step, T, 501)
        r0 = integrate(W, p, (p["E_set"], p["I_set"]), before)
        r1 = integrate(W, {**p, "Theta_I": p["Theta_I"] - delta}, r0[-1], after)
        ax.plot(np.r_[before, after], np.r_[r0[:, 0], r1[:, 0]], color="C2", label="E")
        ax.plot(np.r_[before, after], np.r_[r0[:, 1], r1[:, 1]], color="C3", label="I")
        ax.axvline(t_step, color="grey", ls="--", lw=0.8)
        coefficient = ei.paradoxical_coefficient(W, p)
        ax.set(xlabel="t [ms]", ylabel="rate [Hz]",
               title=f"{preset}: drive to I +{delta:g} at {t_step:g} ms (dI/dTheta_I = {float(coefficient):.2f})")
        ax.title.set_fontsize(8)
        ax.legend(fontsize=8)
    save_figure(fig, path, force=True, dpi=110)


def plot_phase_plane(panels, path, grid=400):
    """(E, I) plane of each (title, preset, W): both nullclines (zero contours of dE/dt, dI/dt),
    every fixed point (filled: stable, open: unstable; `model.fixed_points`) and the kicked trial
    from rest (QSS kick)."""
    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 4.2), squeeze=False)
    for ax, (title, preset, W) in zip(axes[0], panels):
        p = ei.PRESETS[preset]["params"]
        W = np.asarray(W, dtype=float)
        E, I, exists, stable = ei.fixed_points(W, p)
        top = np.nanmax(np.r_[E[exists], I[exists], p["E_set"], p["I_set"]]) * 1.4 + 1.0
        Eg, Ig = np.meshgrid(np.linspace(0.0, top, grid), np.linspace(0.0, top, grid))
        x_E, x_I = ei.inputs(Eg, Ig, W, p)
        ax.contour(Eg, Ig, -Eg + p["g_E"] * np.maximum(x_E, 0), levels=[0], colors="C2")
        ax.contour(Eg, Ig, -Ig + p["g_I"] * np.maximum(x_I, 0), levels=[0], colors="C3")
        t = np.linspace(0.0, 2000.0, 4001)
        r = integrate(W, p, (0.0, 0.0), t, *ei.QSS_KICK, r_max=10 * top)
        ax.plot(r[:, 0], r[:, 1], color="k", lw=0.8, label="kicked trial from rest")
        for k in np.flatnonzero(exists):
            ax.plot(E[k], I[k], "o", ms=8, color="k", mfc="k" if stable[k] else "w",
                    label=f"{ei.REGIONS[k]} ({'stable' if stable[k] else 'unstable'})")
        ax.plot([], [], color="C2", label="E nullcline")
        ax.plot([], [], color="C3", label="I nullcline")
        ax.set(xlim=(0, top), ylim=(0, top), xlabel="E [Hz]", ylabel="I [Hz]")
        ax.set_title(f"{title}\nW = ({', '.join(f'{w:.3g}' for w in W)})", fontsize=8)
        ax.legend(fontsize=6, loc="upper left")
    save_figure(fig, path, force=True, dpi=110)
