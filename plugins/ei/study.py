"""The comparative study of the E/I learning rules in QSS and in trials: its numbers (`run_study`,
`published_runs`); `tcnet_plugins.ei.cli` runs it as `tcnet ei-study`, `tcnet_plugins.ei.figures`
draws it.

For each parameter set and each rule, initial weight vectors are drawn uniformly in the box
W = W_preset * U[box_low, box_high] (componentwise; default [0.5, 1.5]; the first is the
preset's own W). QSS mode: all of them learn at once, vectorized over the initial weights: at
every step the QSS rates are the closed-form steady state and W <- max(W + dW(E, I, W), 0), with
the formulas the optimizer plugins use (`rules.rule_update`; for `exact` its closed-form implicit
derivative in the regime of the steady state). Trials mode: each learns with the published trial
protocol (`protocol = "soldado2022"`) through the optimizer plugin itself, as a run of a tcnet
study stored in an HDF5 file (`trial_runs`), which `tcnet compare`, `tcnet.open` and a rerun see
like any study's runs. (QSS mode is one vectorized closed-form loop over every initial weight
vector at once, not a series of runs: its numbers go to the command's table and JSON only.)

Learning rates on a natural scale: the rules' raw sizes differ by about D (the 1/D of the
implicit derivative) and by the gains, so every rule learns at eta = lr * `rules.natural_scale`,
which equalizes how fast each removes the rate error along its fastest direction near the set
point; lr is the cross-homeostatic rule's own rate. Step counts then compare the rules, not
their step sizes. Convergence is `rules.streak`, as in the optimizers: within 1 % of (E_set,
I_set) with a stable Up state for `hold` steps; the step count is the first of them.

The published experiment (`published_runs`): cross-homeostatic learning from the published Down
state start, 2000 trials, per noise seed.
"""
import numpy as np

from tcnet.resources import FLOAT
from tcnet.status import Status
from tcnet_plugins.ei import model as ei
from tcnet_plugins.ei.rules import RULES, natural_scale, rule_update, streak, within


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


TRIAL_BASE = {"dynamics": {"name": "ei_rate"}, "loss": [{"name": "homeostatic"}],
              "optimizer": {"name": "cross_homeostatic", "protocol": "soldado2022"}}
"""The base spec of every trials-mode learning run: the published protocol, through the optimizer
plugin itself; a run's overrides (`trial_point`) say the rest."""


def trial_point(preset, rule, W, lr, steps, seed, rtol=0.01, hold=1) -> dict:
    """The overrides (dotted keys of TRIAL_BASE) of one trials-mode learning run."""
    return {"dynamics.preset": preset, "dynamics.W": [float(w) for w in W], "optimizer.name": rule,
            "optimizer.lr": float(lr), "optimizer.steps": int(steps), "optimizer.seed": int(seed),
            "optimizer.rtol": float(rtol), "optimizer.hold": int(hold)}


def trial_runs(points, path, workers=1, name="ei-trials") -> list:
    """The learning runs of `points` (trial_point overrides) as one tcnet study stored in the HDF5
    file `path`, so that `tcnet compare`, `tcnet.open` and resuming see them like any study's
    runs (runs the file holds already are not run again). Per point: (its stored record, the
    (steps + 1, 6) array of the rule's E, I and W per trial, read from the run's history). `name`
    names the study in the file (its run ids start with it)."""
    import concurrent.futures

    from tcnet.plugins import registry
    from tcnet.study import Study, stored

    study = Study(TRIAL_BASE, overrides=list(points), name=name)
    executor = concurrent.futures.ThreadPoolExecutor(1) if workers == 1 else None
    try:
        report = study.run(path, executor, workers=workers, progress=False)
    finally:
        if executor is not None:
            executor.shutdown()
    if report.failed or report.lost:
        raise RuntimeError(f"ei-study: learning runs failed: {'; '.join(report.failed + report.lost)}")
    records = stored(path, study.runs(), registry())
    out = []
    for planned in study.runs():
        rec = records[planned.run_id][0]
        h = rec.history
        out.append((rec, np.column_stack([h["extra/E"], h["extra/I"], *(h[f"extra/{w}"] for w in ei.WEIGHTS)])))
    return out


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
              box=(0.5, 1.5), rtol=0.01, hold=50, store=None, workers=1):
    """The study's numbers in one mode: {preset: {rule: row}} plus trajectories and end points.

    qss: all n_init initial weights learn at once (`learn`); trials: each runs the published
    trial protocol through the optimizer plugin, with noise seed `seed` + its row, as runs of a
    study stored in the HDF5 file `store` (`trial_runs`). Every rule learns at eta = lr *
    natural_scale (`eta`); convergence is `rules.streak` with `hold`."""
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
                runs = trial_runs([trial_point(preset, rule, w, rate, steps, seed + i, rtol, hold)
                                   for i, w in enumerate(W0)], store, workers)
                W = np.array([rec.final.arrays["W"] for rec, _ in runs])
                conv = np.array([rec.attrs["optimizer_status"] == Status.CONVERGED for rec, _ in runs])
                k_conv = np.array([rec.steps - hold + 1 if c else -1 for (rec, _), c in zip(runs, conv)])
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


def published_runs(seeds, trials=2000, rtol=0.01, store=None, workers=1):
    """The published experiment per noise seed: cross-homeostatic learning with the soldado2022
    protocol from PUBLISHED_START for `trials` trials, as runs of a study stored in the HDF5 file
    `store` (`trial_runs`). Per seed: the first trial whose rates are within rtol of (5, 14), the
    trial from which they stay within to the end (`rules.streak`), the rates at trial 500 and the
    final weights; and the learning curves."""
    p = ei.PRESETS["paradoxical"]["params"]
    points = [trial_point("paradoxical", "cross_homeostatic", PUBLISHED_START, 5e-4, trials, seed, rtol=0.0)
              for seed in seeds]
    rows = []
    for seed, (_, path) in zip(seeds, trial_runs(points, store, workers, "ei-published")):
        ok = within(path[:, 0], path[:, 1], p, rtol)
        start = -1
        for k, flag in enumerate(ok):
            start = int(streak(start, flag, k))
        rows.append({"seed": seed, "first_within": int(np.argmax(ok)) if ok.any() else -1, "stays_within_from": start,
                     "rates_500": path[min(500, trials)].tolist()[:2], "final_W": path[-1, 2:].tolist(), "path": path})
    return rows
