"""`tcnet ei-study`: the comparative study of the E/I learning rules (`tcnet_plugins.ei.study`) from
the command line, in QSS, in trials or both, with the published runs. It prints one markdown
table per mode, writes it (ei_study.md) with the numbers (ei_study.json) and the figures
(`tcnet_plugins.ei.figures`) to the output folder.
"""
import json
from pathlib import Path

import numpy as np

from tcnet.resources import require
from tcnet.store import write_bytes
from tcnet.study import MAX_RUNS
from tcnet.validate import choice, integer, positive, real
from tcnet_plugins.ei import model as ei
from tcnet_plugins.ei.rules import RULES
from tcnet_plugins.ei.study import PUBLISHED_START, memory, published_runs, run_study


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
    seeds = range(integer(name, "--seeds", args.seeds, low=0, high=MAX_RUNS))  # each a run of a study
    flags = {"qss": ("--n-init", "--steps"), "trials": ("--trial-inits", "--trials")}
    for mode in modes:
        s, (inits, steps) = settings[mode], flags[mode]
        require(name, f"{inits} {s['n_init']} with {steps} {s['steps']}",
                memory(mode, s["n_init"], s["steps"], len(args.presets) * len(args.rules)))
    workers = integer(name, "--workers", args.workers, low=1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    store = out / "ei_study.h5"  # the learning runs (trials mode, published): a study file
    results = {}
    for mode in modes:
        settings[mode].update(hold=hold, seed=args.seed, box=[lo, hi])
        s = settings[mode]
        results[mode] = run_study(args.presets, args.rules, mode, s["n_init"], s["steps"], s["lr"], args.seed,
                                  (lo, hi), 0.01, hold, store, workers)
    if seeds:
        results["published"] = published_runs(seeds, settings["trials"]["steps"], store=store, workers=workers)
    text = table(results, settings)
    print(text)
    numbers = {mode: _numbers(results[mode]) for mode in modes}
    if seeds:
        numbers["published"] = [{k: v for k, v in r.items() if k != "path"} for r in results["published"]]
    report = json.dumps({"settings": {m: settings[m] for m in modes}, "results": numbers}, indent=1)
    for name, content in (("ei_study.md", text + "\n"), ("ei_study.json", report)):
        write_bytes(out / name, content.encode(), force=True)  # complete or not there (replaces the last study's)
    from tcnet_plugins.ei import figures  # matplotlib only here: registering the command stays light

    for mode in modes:
        for preset, res in results[mode].items():
            figures.plot_trajectories(res, preset, out / f"ei_{mode}_trajectories_{preset}.png", mode)
            figures.plot_regions(res, preset, out / f"ei_{mode}_regions_{preset}.png")
    if seeds:
        figures.plot_trial_traces(results["published"][0], out / "ei_trial_traces.png")
        figures.plot_learning_curves(results["published"], out / "ei_learning_curves.png")
    figures.plot_paradoxical_response(out / "ei_paradoxical_response.png")
    panels = [("paradoxical, published start (Down state reached)", "paradoxical", PUBLISHED_START),
              ("paradoxical, preset W", "paradoxical", ei.PRESETS["paradoxical"]["W"]),
              ("non-paradoxical, weak inhibition (E alone)", "non_paradoxical", (1.5, 1.0, 0.5, 2.0))]
    if seeds:
        panels.insert(1, ("paradoxical, learned (published run)", "paradoxical", results["published"][0]["final_W"]))
    figures.plot_phase_plane(panels, out / "ei_phase_plane.png")
    ran = f", the learning runs to {store} (tcnet compare, tcnet.open)" if store.exists() else ""
    print(f"wrote {out / 'ei_study.md'}, ei_study.json and figures to {out}{ran}")
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
    sp.add_argument("--workers", type=int, default=1, help="learning runs at once (trials mode, published runs): "
                    "1 (default) in this process, more in as many worker processes")
    sp.add_argument("--out", default="ei_study", help="output directory")
    sp.set_defaults(handler=main)
