"""Comparative study of the E/I learning rules in QSS (the `tcnet ei-study` command).

For each parameter set and each rule, n initial weight vectors are drawn uniformly in the box
W = W_preset * U[box_low, box_high] (componentwise; default [0.5, 1.5], i.e. +-50 % around the
preset's initial weights) and all of them learn at once, vectorized over the initial weights: at
every step the QSS rates are the closed-form fixed point and W <- max(W + dW(E, I, W), 0), with
the same formulas the optimizer plugins use (`model.rule_update`; for `exact` its closed-form
implicit derivative, which the tests check against autograd and finite differences).

A run counts as converged when its final rates are within `rtol` (1 %) of (E_set, I_set) and its
Up state is stable; steps to converge is the first step from which it stayed so until the end.
Figures (PNG): per parameter set, rates and weights against steps for every rule from the preset's
initial weights, and the (W_EE, W_IE) plane with the set-point W_EI, W_II: where they are
positive, where the Up state is stable and paradoxical, with the converged end points on top.
"""
import json
from pathlib import Path

import numpy as np

from tcnet.validate import choice, integer, positive, real
from tcnet_plugins.ei import model as ei


def learn(rule, W0, p, lr, steps, rtol=0.01, hold=1, record=()):
    """Learn from each row of W0 (n, 4) for up to `steps` QSS steps with rate eta = lr.

    A row stops (its weights freeze) once it has converged (`model.streak`: rates within rtol of
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
        ok = ei.within(E, I, p, rtol) & ei.stable_up(W, p)
        start = np.where(done, start, ei.streak(start, ok, k))
        done |= (start >= 0) & (k - start + 1 >= hold)
        for i in record:
            paths[i][k] = (E[i], I[i], *W[i])
        if k < steps:
            with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                dW = ei.rule_update(rule, E, I, W, ei.gated(p, regime) if rule == "exact" else p, lr)
            dW = np.where(done[:, None], 0.0, np.nan_to_num(dW, nan=0.0, posinf=0.0, neginf=0.0))
            W = np.maximum(W + dW, 0.0)
    return W, done, np.where(done, start, -1), paths


def run_study(presets=tuple(ei.PRESETS), rules=ei.RULES, n_init=200, steps=30000, lr=3e-4, seed=0,
              box=(0.5, 1.5), rtol=0.01):
    """The study's numbers: {preset: {rule: row}} plus trajectories and end points for figures."""
    rng = np.random.default_rng(seed)
    out = {}
    for preset in presets:
        p = ei.PRESETS[preset]["params"]
        W_preset = np.array(ei.PRESETS[preset]["W"])
        W0 = np.vstack([W_preset, W_preset * rng.uniform(box[0], box[1], size=(n_init - 1, 4))])
        start_up = ei.stable_up(W0, p)
        rows = {}
        for rule in rules:
            W, conv, k_conv, paths = learn(rule, W0, p, lr, steps, rtol, record=(0,))
            paradox = ei.paradoxical_coefficient(W, p) > 0
            rows[rule] = {
                "converged": float(np.mean(conv)),
                "median_steps": float(np.median(k_conv[conv])) if conv.any() else None,
                "paradoxical_final": float(np.mean(paradox[conv])) if conv.any() else None,
                "preset_W_converged": bool(conv[0]),
                "preset_W_steps": int(k_conv[0]),
                "preset_W_final": W[0].tolist(),
                "end_points": W[conv][:, [0, 2]].tolist(),
                "trajectory": paths[0],
            }
        out[preset] = {"start_stable_up": float(np.mean(start_up)), "rules": rows}
    return out


def table(results, n_init, steps, lr) -> str:
    lines = [f"n_init = {n_init} per set, {steps} QSS steps, lr = {lr}, converged = within 1 % of "
             "(E_set, I_set) with a stable Up state", "",
             "| set | rule | converged | median steps | paradoxical (of converged) | preset W: steps | preset W: final (W_EE, W_EI, W_IE, W_II) |",
             "|---|---|---|---|---|---|---|"]
    for preset, res in results.items():
        for rule, r in res["rules"].items():
            med = "-" if r["median_steps"] is None else f"{r['median_steps']:.0f}"
            par = "-" if r["paradoxical_final"] is None else f"{r['paradoxical_final']:.2f}"
            k = r["preset_W_steps"] if r["preset_W_converged"] else "not converged"
            w = ", ".join(f"{v:.4g}" for v in r["preset_W_final"])
            lines.append(f"| {preset} | {rule} | {r['converged']:.3f} | {med} | {par} | {k} | ({w}) |")
        lines.append(f"| {preset} | (initial weights with a stable Up state) | {res['start_stable_up']:.3f} | | | | |")
    return "\n".join(lines)


def plot_trajectories(res, preset, path):
    from tcnet.plot import plt

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
    axes[0, 0].set_title(f"{preset}: QSS rates")
    axes[0, 1].set_title("weights")
    for ax in axes.ravel():
        ax.set_xscale("log")
    axes[-1, 0].set_xlabel("step + 1")
    axes[-1, 1].set_xlabel("step + 1")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_regions(res, preset, path, grid=300):
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    from tcnet.plot import plt

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
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(args) -> int:
    n_init = integer("ei-study", "--n-init", args.n_init, low=1)
    steps = integer("ei-study", "--steps", args.steps, low=0)
    lr = positive("ei-study", "--lr", args.lr)
    lo = real("ei-study", "--box low", args.box[0], low=0)
    hi = real("ei-study", "--box high", args.box[1], low=lo)
    for preset in args.presets:
        choice("ei-study", "--presets", preset, tuple(ei.PRESETS))
    for rule in args.rules:
        choice("ei-study", "--rules", rule, ei.RULES)
    results = run_study(args.presets, args.rules, n_init, steps, lr, args.seed, (lo, hi))
    text = table(results, n_init, steps, lr)
    print(text)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "ei_study.md").write_text(text + "\n")
    numbers = {preset: {"start_stable_up": res["start_stable_up"],
                        "rules": {rule: {k: v for k, v in r.items() if k != "trajectory"}
                                  for rule, r in res["rules"].items()}}
               for preset, res in results.items()}
    settings = {"n_init": n_init, "steps": steps, "lr": lr, "seed": args.seed, "box": [lo, hi]}
    (out / "ei_study.json").write_text(json.dumps({"settings": settings, "results": numbers}, indent=1))
    for preset, res in results.items():
        plot_trajectories(res, preset, out / f"ei_trajectories_{preset}.png")
        plot_regions(res, preset, out / f"ei_regions_{preset}.png")
    print(f"wrote {out / 'ei_study.md'}, ei_study.json and figures to {out}")
    return 0


def add_command(subparsers):
    sp = subparsers.add_parser("ei-study", help="compare the E/I homeostatic learning rules (QSS) "
                               "over random initial weights; table and figures")
    sp.add_argument("--presets", nargs="+", default=list(ei.PRESETS), help="parameter sets")
    sp.add_argument("--rules", nargs="+", default=list(ei.RULES), help="learning rules")
    sp.add_argument("--n-init", type=int, default=200, help="initial weight vectors per set (the "
                    "first is the preset's own)")
    sp.add_argument("--steps", type=int, default=30000, help="QSS learning steps")
    sp.add_argument("--lr", type=float, default=3e-4, help="learning rate eta (all rules)")
    sp.add_argument("--box", type=float, nargs=2, default=[0.5, 1.5], metavar=("LOW", "HIGH"),
                    help="initial W = preset W times U[LOW, HIGH] per component")
    sp.add_argument("--seed", type=int, default=0)
    sp.add_argument("--out", default="ei_study", help="output directory")
    sp.set_defaults(handler=main)
