"""Reproduce the main run of the published "Preparatory network optimization" notebook.

N = 500, n/N = 0.1, seed 2, legacy initialisation (bit-for-bit the notebook's network),
raw-weight normalization, tau = 0.01 s, alpha = 1e5, and the published recipe (30 Adam steps with
lr 0.01, then L-BFGS up to 200 iterations, gradient tolerance 1e-5) for beta = 0, 0.01 and 0.1,
all from the same initial network. Prints the initial and final losses (with L1, L2, L3), the
iteration and evaluation counts, and the decay times to 1 % and 5 % before and after for
beta = 0.01; writes the runs to an HDF5 file and the figures (PNG) to --out.

The original TensorFlow implementation reported final losses 0.63368 (beta 0), 0.64046
(beta 0.01) and 0.65156 (beta 0.1) for this network.

    .venv/bin/python examples/reproduce_preparatory_notebook.py [--out out/reproduce] [--N 500]

On two shared cores this takes several minutes (one evaluation at N = 500 is about 0.5 s).
"""
import argparse
import time
from pathlib import Path

from tcnet import run
from tcnet.plugins import registry
from tcnet.store import RunWriter
from tcnet_plugins.preparatory import figures
from tcnet_plugins.preparatory.analysis import decay_time
from tcnet_plugins.preparatory.cli import recipe, run_spec

PUBLISHED = {0.0: 0.63368, 0.01: 0.64046, 0.1: 0.65156}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="out/reproduce", help="directory for the HDF5 file and figures")
    p.add_argument("--N", type=int, default=500)
    p.add_argument("--betas", type=float, nargs="+", default=[0.0, 0.01, 0.1])
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    h5 = out / "reproduce_preparatory.h5"
    dynamics = {"name": "linear_decay", "seed": 2, "N": args.N, "n_frac": 0.1, "tau": 0.01,
                "normalization": "raw_weights", "init": "legacy"}
    initial = registry().get("dynamics", "linear_decay").create(**{k: v for k, v in dynamics.items() if k != "name"})
    results = {}
    for beta in args.betas:
        spec = run_spec(dynamics, alpha=1e5, beta=beta, optimizer=recipe())
        t0 = time.perf_counter()
        res = run(spec, dynamics=initial, recorders=[RunWriter(h5)], progress=not args.no_progress)
        elapsed = time.perf_counter() - t0
        results[beta] = res
        steps = res.history.steps
        first, last = steps[0], steps[-1]
        lbfgs_iters = sum(1 for s in steps if s.stage == 1)  # its start point is step 30
        terms = lambda s: ", ".join(f"{k} {v:.6g}" for k, v in s.terms.items())  # noqa: E731
        # the history's decay_diverges: J unstable at that step, its L1 no decay value
        unstable = lambda s: ("  (unstable J: L1 is the closed form of a divergent integral)"  # noqa: E731
                              if s.extra.get("decay_diverges") == 1.0 else "")
        published = f" (published {PUBLISHED[beta]})" if beta in PUBLISHED and args.N == 500 else ""
        print(f"beta = {beta:g}: status {res.result.status}")
        print(f"  initial loss {first.loss:.6f}  [{terms(first)}]{unstable(first)}")
        print(f"  final loss   {last.loss:.6f}{published}  [{terms(last)}]{unstable(last)}")
        print(f"  Adam steps 30, L-BFGS iterations {lbfgs_iters}, evaluations {res.result.evaluations}, "
              f"{elapsed:.0f} s")

    if 0.01 in results:
        res = results[0.01]
        for label, d in (("before", res.initial), ("after", res.final)):
            t1, t5 = decay_time(d, 0.01), decay_time(d, 0.05)
            note = "  (unstable: the activity grows)" if t1 == float("inf") else ""
            print(f"beta = 0.01, {label}: t_1% = {t1 * 1e3:.3f} ms, t_5% = {t5 * 1e3:.3f} ms{note}")

    any_res = next(iter(results.values()))
    finals = {f"beta = {b:g}": r.final for b, r in results.items()}
    paths = [
        figures.learning_curve({f"beta = {b:g}": tuple(r.history.column(k) for k in ("step", "stage", "loss"))
                                for b, r in results.items()}, out / "learning_curve.png"),
        figures.activity_decay(finals,
                               out / "activity_decay.png"),
        figures.spectra({"initial": any_res.initial, **finals}, out / "spectra.png"),
        figures.readout_traces(finals, out / "readout_traces.png"),
    ]
    print(f"runs: {h5}")
    print("figures: " + ", ".join(map(str, paths)))


if __name__ == "__main__":
    main()
