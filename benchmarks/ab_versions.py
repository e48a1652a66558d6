"""Old-versus-new speed of tcnet: the same workloads timed by two checkouts, alternately.

Issue 13 (one shared optimizer loop, evaluations returning per-term values and side results,
settings declared once, plugins as packages) asks that the speed benchmarks be no slower. This
script times a fixed set of workloads through the API that the code before the redesign (commit
8217c3f) and after it share: run specs given as plain dicts to `tcnet.run`, the registry names of
dynamics, losses and optimizers (unchanged; "chain" is still accepted for "staged"),
`tcnet.run.build_dynamics` / `build_objective`, `Objective.evaluate(theta)` and
`tcnet.store.RunWriter`. Nothing imports a plugin module by path (the flat modules became packages).

Workloads (each line of the result is one number; smaller is faster):

- eval_eig_N200, eval_default_N200: the preparatory objective L1 + 1e5 L2 (decay + stability,
  linear_decay N = 200, n/N = 0.1) value and gradient, with backend "eig" (the old default) and with
  the checkout's default backend (no "backend" key: "eig" before, "auto" after), as the median over
  rounds of (evaluation time / one numpy.linalg.eig of the same J), eig and evaluation interleaved;
- run_eig_N100, run_default_N100: a short run, Adam 100 steps then L-BFGS 50 iterations, on the
  preparatory model N = 100 (decay, stability 1e5, smoothness 0.01), as CPU time per objective
  evaluation / one numpy.linalg.eig of its J (the median of eigs timed right before and after);
- ei_qss_step_us: the E/I rule cross_homeostatic in QSS mode (ei_rate, paradoxical preset), 2000
  steps, microseconds per step;
- penalty_step_us, lagrangian_step_us: the constraint methods on the toy Gaussian (the slides'
  settings, 2000 steps, tol 0 so every step runs), microseconds per step;
- store_step_us: the lagrangian run of the line above written to an HDF5 file by RunWriter,
  microseconds per step including the store (its CPU time: waiting for the disk is not counted).

Run with a checkout's python, it prints one JSON line: those numbers, the steps and evaluations
each run took (which must agree between versions, else the comparison is void), and where tcnet was
imported from. With `--versions OLD_PY NEW_PY` it is the driver: it runs itself with the two
pythons alternately (old, new, old, new, ...; the machine is shared, so load hits both alike),
`--repeats` times each, and prints per workload the median for old and new, new/old of the
medians, and the range of the paired ratios (run i of new / run i of old), with the load averages
before and after. Times are the process's CPU time (time.process_time): on a machine shared by
more runnable processes than cores, wall time mostly measures how long the process waited for a
core (a toy evaluation of 0.3 ms CPU took 1.3 to 2.2 ms wall at load 18), CPU time the work done.
BLAS runs on one thread (unless OPENBLAS_NUM_THREADS etc. are set): on a loaded machine a
multi-threaded eig spins waiting for its second core, and its time, the unit of the ratios, then
varies tenfold. `--only NAME ...` measures some workloads only. Typical use (the old checkout in
its own worktree with its own venv):

    git worktree add /tmp/tcnet-old 8217c3f --detach && make -C /tmp/tcnet-old .venv/bin/tcnet
    .venv/bin/python benchmarks/ab_versions.py --versions /tmp/tcnet-old/.venv/bin/python .venv/bin/python
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

for _threads in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_threads, "1")  # before numpy loads BLAS: see the module doc

import numpy as np  # noqa: E402

PREPARATORY = [{"name": "decay"}, {"name": "stability", "weight": 1e5}]
TOY = {"dynamics": {"name": "toy_gaussian", "start": [2.0, 1.0], "u": [1.0, 1.5], "C": [[1.0, 0.7], [0.7, 1.0]]},
       "loss": [{"name": "toy_objective", "label": "objective"},
                {"name": "toy_constraint", "label": "constraint", "target": 3.0, "index": 1}]}
METHODS = {"penalty": {"name": "penalty", "constraint": "constraint", "steps": 2000, "lr": 0.01, "mu": 1.0,
                       "mu_factor": 2.0, "mu_every": 100, "mu_max": 50.0},
           "lagrangian": {"name": "lagrangian", "constraint": "constraint", "steps": 2000, "lr": 0.05,
                          "multiplier_lr": 0.05, "rho": 1.0, "tol": 0.0}}
EI = {"dynamics": {"name": "ei_rate", "preset": "paradoxical"}, "loss": [{"name": "homeostatic"}],
      "optimizer": {"name": "cross_homeostatic", "mode": "qss", "lr": 3e-3, "steps": 2000, "rtol": 0.0}}


def preparatory(N, backend):
    """The linear_decay dynamics entry, with `backend` or (None) the checkout's default."""
    entry = {"name": "linear_decay", "seed": 0, "N": N, "n_frac": 0.1}
    return entry if backend is None else {**entry, "backend": backend}


def seconds(f, *args):
    """CPU seconds of f(*args)."""
    t0 = time.process_time()
    f(*args)
    return time.process_time() - t0


def eig_seconds(J, repeats):
    return [seconds(np.linalg.eig, J) for _ in range(repeats)]


def evaluation_vs_eig(backend, N=200, rounds=15):
    """Median over rounds of (value+gradient time / numpy.linalg.eig time), one eig before each."""
    from tcnet.plugins import registry
    from tcnet.run import build_dynamics, build_objective

    plugins = registry()
    objective = build_objective(build_dynamics(preparatory(N, backend), plugins), PREPARATORY, plugins)
    theta = objective.dynamics.vector()
    J = np.array(objective.dynamics.state(theta).J)
    objective.evaluate(theta)  # warm-up
    ratios = [seconds(objective.evaluate, theta) / seconds(np.linalg.eig, J) for _ in range(rounds)]
    return float(np.median(ratios))


def short_run(backend, N=100):
    """CPU time per evaluation of Adam 100 + L-BFGS 50, over one eig of the start's J."""
    import tcnet

    spec = {"dynamics": preparatory(N, backend),
            "loss": PREPARATORY + [{"name": "smoothness", "weight": 0.01}],
            "optimizer": {"name": "chain", "stages": [{"name": "adam", "steps": 100, "lr": 0.01},
                                                       {"name": "lbfgs", "max_iter": 50}]}}
    t0 = time.process_time()
    out = tcnet.run(spec, progress=False)
    cpu = time.process_time() - t0
    J = np.array(out.initial.state(out.initial.vector()).J)
    eig = float(np.median(eig_seconds(J, 20)))
    return cpu / out.result.evaluations / eig, {"steps": len(out.history.steps), "evaluations": out.result.evaluations}


def per_step(spec, recorders=()):
    """CPU microseconds per reported step of a run, and its counts."""
    import tcnet

    t0 = time.process_time()
    out = tcnet.run(spec, recorders=list(recorders), progress=False)
    cpu = time.process_time() - t0
    steps = len(out.history.steps)
    return 1e6 * cpu / steps, {"steps": steps, "evaluations": out.result.evaluations, "status": out.result.status}


def stored():
    """per_step of the lagrangian toy run with an HDF5 RunWriter as recorder."""
    from tcnet.store import RunWriter

    with tempfile.TemporaryDirectory() as tmp:
        return per_step({**TOY, "optimizer": METHODS["lagrangian"]}, [RunWriter(Path(tmp) / "runs.h5")])


WORKLOADS = {
    "eval_eig_N200": lambda: (evaluation_vs_eig("eig"), None),
    "eval_default_N200": lambda: (evaluation_vs_eig(None), None),
    "run_eig_N100": lambda: short_run("eig"),
    "run_default_N100": lambda: short_run(None),
    "ei_qss_step_us": lambda: per_step(EI),
    "penalty_step_us": lambda: per_step({**TOY, "optimizer": METHODS["penalty"]}),
    "lagrangian_step_us": lambda: per_step({**TOY, "optimizer": METHODS["lagrangian"]}),
    "store_step_us": stored,
}


def measure(names) -> dict:
    import tcnet

    results, counts = {}, {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", np.exceptions.ComplexWarning)
        for name in names:
            results[name], counts[name] = WORKLOADS[name]()
    return {"tcnet": str(Path(tcnet.__file__).parent.parent), "results": results, "counts": counts}


def drive(old_py, new_py, repeats, names):
    """Alternate old and new processes; print the medians, their ratio and the load averages."""
    load_before = os.getloadavg()
    runs = {"old": [], "new": []}
    for i in range(repeats):
        for label, python in (("old", old_py), ("new", new_py)):
            done = subprocess.run([python, __file__, "--only", *names], capture_output=True, text=True)
            if done.returncode:
                sys.exit(f"{label} run {i + 1} ({python}) failed:\n{done.stderr}")
            runs[label].append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(f"{label} run {i + 1}/{repeats} done (load {os.getloadavg()[0]:.1f})", file=sys.stderr)
    load_after = os.getloadavg()
    for label in runs:
        print(f"{label}: tcnet from {runs[label][0]['tcnet']}")
    first = {label: runs[label][0]["counts"] for label in runs}
    for key in first["old"]:
        if first["old"][key] != first["new"][key]:
            print(f"note: {key} differs in counts: old {first['old'][key]}, new {first['new'][key]}")
    print(f"{'workload':<20}{'old (median)':>14}{'new (median)':>14}{'new/old':>9}{'paired new/old':>20}")
    for key in runs["old"][0]["results"]:
        old = np.array([r["results"][key] for r in runs["old"]])
        new = np.array([r["results"][key] for r in runs["new"]])
        paired = new / old
        print(f"{key:<20}{np.median(old):>14.3f}{np.median(new):>14.3f}{np.median(new) / np.median(old):>9.3f}"
              f"{f'{paired.min():.2f} .. {paired.max():.2f}':>20}")
    print(f"units: eval_* and run_* are multiples of one numpy.linalg.eig of the same J; *_us CPU "
          f"microseconds per step. {repeats} processes each, alternating.")
    print("load averages (1, 5, 15 min): before " + " ".join(f"{x:.2f}" for x in load_before)
          + ", after " + " ".join(f"{x:.2f}" for x in load_after))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--versions", nargs=2, metavar=("OLD_PY", "NEW_PY"),
                        help="drive: run this script with both pythons alternately and print the table")
    parser.add_argument("--repeats", type=int, default=5, help="processes per version (default 5)")
    parser.add_argument("--only", nargs="+", choices=list(WORKLOADS), default=list(WORKLOADS), metavar="NAME",
                        help=f"workloads to measure (default all: {', '.join(WORKLOADS)})")
    args = parser.parse_args()
    if args.versions:
        drive(*args.versions, args.repeats, args.only)
    else:
        print(json.dumps(measure(args.only)))


if __name__ == "__main__":
    main()
