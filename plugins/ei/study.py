"""Comparative study of the E/I learning rules (the `tcnet ei-study` command), in QSS and in trials.

For each parameter set and each rule, initial weight vectors are drawn uniformly in the box
W = W_preset * U[box_low, box_high] (componentwise; default [0.5, 1.5]; the first is the
preset's own W). QSS mode: all of them learn at once, vectorized over the initial weights: at
every step the QSS rates are the closed-form steady state and W <- max(W + dW(E, I, W), 0), with
the formulas the optimizer plugins use (`rules.rule_update`; for `exact` its closed-form implicit
derivative in the regime of the steady state). Trials mode: each learns with the published trial
protocol (`protocol = "soldado2022"`) through the optimizer plugin itself.

Learning rates on a natural scale: the rules' raw sizes differ by about D (the 1/D of the
implicit derivative) and by the gains, so every rule learns at eta = lr * `rules.natural_scale`,
which equalizes how fast each removes the rate error along its fastest direction near the set
point; lr is the cross-homeostatic rule's own rate. Step counts then compare the rules, not
their step sizes. Convergence is `rules.streak`, as in the optimizers: within 1 % of (E_set,
I_set) with a stable Up state for `hold` steps; the step count is the first of them.

The published experiment (`published_runs`): cross-homeostatic learning from the published Down
state start, 2000 trials, per noise seed.

Figures (PNG) in the output folder: per mode and set, rates and weights against steps for every
rule from the preset's W (ei_<mode>_trajectories_<set>.png) and the (W_EE, W_IE) plane with the
set-point W_EI, W_II and the converged end points (ei_<mode>_regions_<set>.png); within-trial E/I
traces with the kick (ei_trial_traces.png); learning curves of rates and weights across trials of
the published runs (ei_learning_curves.png); the paradoxical response (ei_paradoxical_response.png);
the phase plane with both nullclines and every fixed point (ei_phase_plane.png).
"""
import json
from pathlib import Path

import numpy as np

import tcnet
from tcnet.resources import FLOAT, require
from tcnet.store import new_file
from tcnet.validate import choice, integer, positive, real
from tcnet_plugins.ei import model as ei
from tcnet_plugins.ei.rules import RULES, natural_scale, rule_update, streak, within
from tcnet_plugins.ei.trials import PROTOCOLS, Trial, integrate


def learn(rule, W0, p, lr, steps, rtol=0.01, hold=1, record=()):
    """Learn from each row of W0 (n, 4) for up to `steps` QSS steps with rate eta = lr.

    A row stops (its weights freeze) once it has converged (`rules.streak`: rates within rtol of
    the set points with a stable Up state for `hold` steps), as the optimizer plugin stops.
    Returns (W_final, converged (n,), steps_to_converge (n,) with -1 where not converged,
    trajectories {i: (steps + 1, 6) array of E, I, W} for the rows listed in `record`; a frozen
    row repeats its last values).
    """
    W = np.array(W0, dtype=float)
    start = np.full(len(W), -1)
    done = np.zeros(len(W), dtype=bool)
    paths = {i: np.empty((steps + 1, 6)) for i in record}
    for k in range(steps + 1):
        E, I, regime = ei.steady_state(W, p)
        ok = within(E, I, p, rtol) & ei.stable_up(W, p)
        start = np.where(done, start, streak(start, ok, k))
        done |= (start >= 0) & (k - start + 1 >= hold)
        for i in record:
            paths[i][k] = (E[i], I[i], *W[i])
        if k < steps:
            with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                dW = rule_update(rule, E, I, W, ei.gated(p, regime) if rule == "exact" else p, lr)
            dW = np.where(done[:, None], 0.0, np.nan_to_num(dW, nan=0.0, posinf=0.0, neginf=0.0))
            W = np.maximum(W + dW, 0.0)
    return W, done, np.where(done, start, -1), paths


def initial_weights(preset, n_init, rng, box):
    """The preset's W, then n_init - 1 draws of W_preset * U[box] (componentwise)."""
    W_preset = np.array(ei.PRESETS[preset]["W"])
    return np.vstack([W_preset, W_preset * rng.uniform(box[0], box[1], size=(n_init - 1, 4))])


def eta(rule, preset, lr):
    """The rule's learning rate on the natural scale: lr times `rules.natural_scale` at the preset's
    set-point weights (lr is the cross-homeostatic rule's own rate)."""
    p, W = ei.PRESETS[preset]["params"], ei.PRESETS[preset]["W"]
    return lr * natural_scale(rule, p, W[0], W[2])


def trial_run(preset, rule, W, lr, steps, seed, rtol=0.01, hold=1):
    """One learning run in trials mode with the published protocol (tcnet.run, the optimizer
    plugin itself): (result, (steps + 1, 6) array of the rule's E, I and W per trial)."""
    spec = {"dynamics": {"name": "ei_rate", "preset": preset, "W": [float(w) for w in W]},
            "loss": [{"name": "homeostatic"}],
            "optimizer": {"name": rule, "protocol": "soldado2022", "lr": lr, "steps": steps, "seed": seed,
                          "rtol": rtol, "hold": hold}}
    out = tcnet.run(spec, progress=False)
    path = np.array([[st.extra["E"], st.extra["I"], *st.x] for st in out.history.steps])
    return out.result, path


def memory(mode, n_init, steps, runs) -> float:
    """Bytes `run_study` holds for `runs` (set, rule) pairs, as tracemalloc measures them: in qss,
    about 1 kB per initial weight vector (the arrays `learn` updates, the end points kept) and one
    (steps + 1, 6) trajectory per pair; in trials, the history of the run going on (about 2 kB per
    trial) and one (steps + 1, 6) trajectory per initial weight vector of the rule going on."""
    path = 6 * FLOAT * (float(steps) + 1)
    if mode == "qss":
        return 1000.0 * n_init + runs * path
    return (float(steps) + 1) * 2000 + n_init * path


def run_study(presets=tuple(ei.PRESETS), rules=RULES, mode="qss", n_init=200, steps=30000, lr=3e-4, seed=0,
              box=(0.5, 1.5), rtol=0.01, hold=50):
    """The study's numbers in one mode: {preset: {rule: row}} plus trajectories and end points.

    qss: all n_init initial weights learn at once (`learn`); trials: each runs the published
    trial protocol through the optimizer plugin, with noise seed `seed` + its row. Every rule
    learns at eta = lr * natural_scale (`eta`); convergence is `rules.streak` with `hold`."""
    rng = np.random.default_rng(seed)
    out = {}
    for preset in presets:
        p = ei.PRESETS[preset]["params"]
        W0 = initial_weights(preset, n_init, rng, box)
        rows = {}
        for rule in rules:
            rate = eta(rule, preset, lr)
            if mode == "qss":
                W, conv, k_conv, paths = learn(rule, W0, p, rate, steps, rtol, hold, record=(0,))
                path = paths[0]
            else:
                runs = [trial_run(preset, rule, w, rate, steps, seed + i, rtol, hold) for i, w in enumerate(W0)]
                W = np.array([res.x for res, _ in runs])
                conv = np.array([res.status == "converged" for res, _ in runs])
                k_conv = np.array([res.steps - hold + 1 if c else -1 for (res, _), c in zip(runs, conv)])
                path = runs[0][1]
            paradox = ei.paradoxical_coefficient(W, p) > 0
            rows[rule] = {
                "eta": rate,
                "converged": float(np.mean(conv)),
                "median_steps": float(np.median(k_conv[conv])) if conv.any() else None,
                "paradoxical_final": float(np.mean(paradox[conv])) if conv.any() else None,
                "preset_W_converged": bool(conv[0]),
                "preset_W_steps": int(k_conv[0]),
                "preset_W_final": W[0].tolist(),
                "end_points": W[conv][:, [0, 2]].tolist(),
                "trajectory": path,
            }
        out[preset] = {"start_stable_up": float(np.mean(ei.stable_up(W0, p))), "rules": rows}
    return out


PUBLISHED_START = (2.1, 3.0, 4.0, 1.5)
"""Soldado-Magraner et al. 2022's initial weights: the paradoxical network in its Down state."""


def published_runs(seeds, trials=2000, rtol=0.01):
    """The published experiment per noise seed: cross-homeostatic learning with the soldado2022
    protocol from PUBLISHED_START for `trials` trials. Per seed: the first trial whose rates are
    within rtol of (5, 14), the trial from which they stay within to the end (`rules.streak`),
    the rates at trial 500 and the final weights; and the learning curves."""
    p = ei.PRESETS["paradoxical"]["params"]
    rows = []
    for seed in seeds:
        _, path = trial_run("paradoxical", "cross_homeostatic", PUBLISHED_START, 5e-4, trials, seed, rtol=0.0)
        ok = within(path[:, 0], path[:, 1], p, rtol)
        start = -1
        for k, flag in enumerate(ok):
            start = int(streak(start, flag, k))
        rows.append({"seed": seed, "first_within": int(np.argmax(ok)) if ok.any() else -1, "stays_within_from": start,
                     "rates_500": path[min(500, trials)].tolist()[:2], "final_W": path[-1, 2:].tolist(), "path": path})
    return rows


def _mean_std(values):
    v = np.asarray(values, dtype=float)
    return v.mean(axis=0), (v.std(axis=0, ddof=1) if len(v) > 1 else np.zeros_like(v.mean(axis=0)))


def table(results, settings) -> str:
    """Markdown: one table per mode in `results` ({mode: run_study output}) and the published runs."""
    lines = []
    for mode, res_mode in results.items():
        if mode == "published":
            continue
        s = settings[mode]
        unit = "QSS steps" if mode == "qss" else "trials (published protocol)"
        lines += [f"### {mode}: n_init = {s['n_init']} per set, up to {s['steps']} {unit}, lr = {s['lr']} "
                  f"(eta = lr x natural scale), converged = within 1 % of (E_set, I_set) with a stable Up state "
                  f"for {s['hold']} steps; steps = the first of those", "",
                  "| set | rule | eta | converged | median steps | paradoxical (of converged) | preset W: steps | "
                  "preset W: final (W_EE, W_EI, W_IE, W_II) |", "|---|---|---|---|---|---|---|---|"]
        for preset, res in res_mode.items():
            for rule, r in res["rules"].items():
                med = "-" if r["median_steps"] is None else f"{r['median_steps']:.0f}"
                par = "-" if r["paradoxical_final"] is None else f"{r['paradoxical_final']:.2f}"
                k = r["preset_W_steps"] if r["preset_W_converged"] else "not converged"
                w = ", ".join(f"{v:.4g}" for v in r["preset_W_final"])
                lines.append(f"| {preset} | {rule} | {r['eta']:.3g} | {r['converged']:.3f} | {med} | {par} | {k} | ({w}) |")
            lines.append(f"| {preset} | (initial weights with a stable Up state) | | {res['start_stable_up']:.3f} | | | | |")
        lines.append("")
    if "published" in results:
        rows = results["published"]
        lines += [f"### published: cross-homeostatic, soldado2022 protocol, W0 = {PUBLISHED_START}, "
                  f"{len(rows[0]['path']) - 1} trials, {len(rows)} noise seeds", "",
                  "| seed | first trial within 1 % | within 1 % from trial | E, I at trial 500 | final W |", "|---|---|---|---|---|"]
        for r in rows:
            lines.append(f"| {r['seed']} | {r['first_within']} | {r['stays_within_from']} | "
                         f"{r['rates_500'][0]:.4f}, {r['rates_500'][1]:.4f} | ({', '.join(f'{w:.4f}' for w in r['final_W'])}) |")
        for label, key in (("first trial within", "first_within"), ("within from", "stays_within_from"),
                           ("E, I at trial 500", "rates_500"), ("final W", "final_W")):
            m, sd = _mean_std([r[key] for r in rows])
            lines.append(f"| mean +- std | {label}: {np.round(m, 4).tolist()} +- {np.round(sd, 4).tolist()} | | | |")
    return "\n".join(lines)


def plot_trajectories(res, preset, path, mode="qss"):
    from tcnet.plot import plt, save_figure

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
        for j, lab in enumerate(("W_EE", "W_EI", "W_IE", "W_II")):
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
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    from tcnet.plot import plt, save_figure

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
    from tcnet.plot import plt, save_figure

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
    from tcnet.plot import plt, save_figure

    fig, (ax_r, ax_w) = plt.subplots(1, 2, figsize=(10, 3.6))
    for i, run in enumerate(runs):
        k = np.arange(len(run["path"]))
        label = i == 0
        ax_r.plot(k, run["path"][:, 0], color="C2", lw=0.8, label="E" if label else None)
        ax_r.plot(k, run["path"][:, 1], color="C3", lw=0.8, label="I" if label else None)
        for j, name in enumerate(("W_EE", "W_EI", "W_IE", "W_II")):
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
    from tcnet.plot import plt, save_figure

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
    from tcnet.plot import plt, save_figure

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


def _numbers(res_mode):
    return {preset: {"start_stable_up": res["start_stable_up"],
                     "rules": {rule: {k: v for k, v in r.items() if k != "trajectory"}
                               for rule, r in res["rules"].items()}}
            for preset, res in res_mode.items()}


def main(args) -> int:
    """The table of both modes, the published runs, and the figures (see the module docstring)."""
    name = "ei-study"
    modes = ("qss", "trials") if args.mode == "both" else (choice(name, "--mode", args.mode, ("qss", "trials", "both")),)
    lo = real(name, "--box low", args.box[0], low=0)
    hi = real(name, "--box high", args.box[1], low=lo)
    for preset in args.presets:
        choice(name, "--presets", preset, tuple(ei.PRESETS))
    for rule in args.rules:
        choice(name, "--rules", rule, RULES)
    settings = {"qss": {"n_init": integer(name, "--n-init", args.n_init, low=1),
                        "steps": integer(name, "--steps", args.steps, low=0), "lr": positive(name, "--lr", args.lr)},
                "trials": {"n_init": integer(name, "--trial-inits", args.trial_inits, low=1),
                           "steps": integer(name, "--trials", args.trials, low=0),
                           "lr": positive(name, "--trial-lr", args.trial_lr)}}
    hold = integer(name, "--hold", args.hold, low=1)
    seeds = range(integer(name, "--seeds", args.seeds, low=0))
    flags = {"qss": ("--n-init", "--steps"), "trials": ("--trial-inits", "--trials")}
    for mode in modes:
        s, (inits, steps) = settings[mode], flags[mode]
        require(name, f"{inits} {s['n_init']} with {steps} {s['steps']}",
                memory(mode, s["n_init"], s["steps"], len(args.presets) * len(args.rules)))
    results = {}
    for mode in modes:
        settings[mode].update(hold=hold, seed=args.seed, box=[lo, hi])
        s = settings[mode]
        results[mode] = run_study(args.presets, args.rules, mode, s["n_init"], s["steps"], s["lr"], args.seed,
                                  (lo, hi), 0.01, hold)
    if seeds:
        results["published"] = published_runs(seeds, settings["trials"]["steps"])
    text = table(results, settings)
    print(text)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    numbers = {mode: _numbers(results[mode]) for mode in modes}
    if seeds:
        numbers["published"] = [{k: v for k, v in r.items() if k != "path"} for r in results["published"]]
    report = json.dumps({"settings": {m: settings[m] for m in modes}, "results": numbers}, indent=1)
    for name, content in (("ei_study.md", text + "\n"), ("ei_study.json", report)):
        with new_file(out / name, force=True) as partial:  # complete or not there (replaces the last study's)
            partial.write_text(content)
    for mode in modes:
        for preset, res in results[mode].items():
            plot_trajectories(res, preset, out / f"ei_{mode}_trajectories_{preset}.png", mode)
            plot_regions(res, preset, out / f"ei_{mode}_regions_{preset}.png")
    if seeds:
        plot_trial_traces(results["published"][0], out / "ei_trial_traces.png")
        plot_learning_curves(results["published"], out / "ei_learning_curves.png")
    plot_paradoxical_response(out / "ei_paradoxical_response.png")
    panels = [("paradoxical, published start (Down state reached)", "paradoxical", PUBLISHED_START),
              ("paradoxical, preset W", "paradoxical", ei.PRESETS["paradoxical"]["W"]),
              ("non-paradoxical, weak inhibition (E alone)", "non_paradoxical", (1.5, 1.0, 0.5, 2.0))]
    if seeds:
        panels.insert(1, ("paradoxical, learned (published run)", "paradoxical", results["published"][0]["final_W"]))
    plot_phase_plane(panels, out / "ei_phase_plane.png")
    print(f"wrote {out / 'ei_study.md'}, ei_study.json and figures to {out}")
    return 0


def add_command(subparsers):
    sp = subparsers.add_parser("ei-study", help="compare the E/I homeostatic learning rules in QSS and in "
                               "published trials over random initial weights; the published runs; table and figures")
    sp.add_argument("--mode", default="both", help="qss, trials or both")
    sp.add_argument("--presets", nargs="+", default=list(ei.PRESETS), help="parameter sets")
    sp.add_argument("--rules", nargs="+", default=list(RULES), help="learning rules")
    sp.add_argument("--n-init", type=int, default=200, help="QSS: initial weight vectors per set (the "
                    "first is the preset's own)")
    sp.add_argument("--steps", type=int, default=30000, help="QSS: learning steps")
    sp.add_argument("--lr", type=float, default=3e-4, help="QSS: the cross-homeostatic rule's learning rate; "
                    "every rule's eta = lr x its natural scale (rules.natural_scale)")
    sp.add_argument("--trial-inits", type=int, default=3, help="trials: initial weight vectors per set")
    sp.add_argument("--trials", type=int, default=2000, help="trials per run (trial mode and published runs)")
    sp.add_argument("--trial-lr", type=float, default=5e-4, help="trials: the cross-homeostatic rate (published "
                    "alpha), scaled per rule as --lr")
    sp.add_argument("--hold", type=int, default=50, help="converged: within 1 %% with a stable Up state for "
                    "this many steps (the step count is the first of them)")
    sp.add_argument("--seeds", type=int, default=5, help="noise seeds of the published runs (0: none)")
    sp.add_argument("--box", type=float, nargs=2, default=[0.5, 1.5], metavar=("LOW", "HIGH"),
                    help="initial W = preset W times U[LOW, HIGH] per component")
    sp.add_argument("--seed", type=int, default=0)
    sp.add_argument("--out", default="ei_study", help="output directory")
    sp.set_defaults(handler=main)
