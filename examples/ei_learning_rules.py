"""E/I homeostatic learning rules from a loss: the issue's "Done when" runs in one script.

1. The paradoxical network of the original notebooks: Up state, stability, paradoxical flag, and
   the set-point weights for W_EE = 5, W_IE = 10 (published: W_EI = 15.2/14, W_II = 21.5/14).
2. From its initial weights (5, 2, 10, 2), the cross-homeostatic and the exact rule learn until
   the QSS rates are within 1 % of (E_set, I_set) = (5, 14) with a stable Up state, in QSS and
   in simulated trials (kick, 300 ms of rate dynamics, rates averaged over the last 100 ms).

Usage: .venv/bin/python examples/ei_learning_rules.py [--lr 1e-3] [--store runs.h5]
(`--store` also writes every run, with its per-step rates, weights, loss and stability, to an
HDF5 file; `tcnet show runs.h5` lists them). The comparative study is `tcnet ei-study`.
"""
import argparse
import time

import numpy as np

import tcnet


def describe(dynamics) -> str:
    s = dynamics.summary()
    return (f"E_up = {s['E_up']:.4f}, I_up = {s['I_up']:.4f}, stable = {bool(s['stable'])}, "
            f"paradoxical = {bool(s['paradoxical'])}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--steps", type=int, default=20000, help="step (trial) budget per run")
    ap.add_argument("--store", default=None, help="HDF5 file to record the runs in")
    args = ap.parse_args()

    net = tcnet.registry().get("dynamics", "ei_rate").create(preset="paradoxical")
    print("paradoxical set, initial W = (5, 2, 10, 2):", describe(net))
    s = net.summary()
    print(f"set-point weights for W_EE = 5, W_IE = 10: W_EI = {s['W_EI_set']:.6f} (15.2/14 = {15.2 / 14:.6f}), "
          f"W_II = {s['W_II_set']:.6f} (21.5/14 = {21.5 / 14:.6f})")
    at_set = net.with_vector(np.array([5.0, s["W_EI_set"], 10.0, s["W_II_set"]]))
    print("  at those weights:", describe(at_set))
    print()
    print("| rule | mode | status | steps (QSS) / trials | final W (W_EE, W_EI, W_IE, W_II) | final E, I | stable | paradoxical | time |")
    print("|---|---|---|---|---|---|---|---|---|")
    for rule in ("cross_homeostatic", "exact"):
        for mode in ("qss", "trials"):
            spec = {"dynamics": {"name": "ei_rate", "preset": "paradoxical"},
                    "loss": [{"name": "homeostatic"}],
                    "optimizer": {"name": rule, "lr": args.lr, "steps": args.steps, "mode": mode, "rtol": 0.01}}
            recorders = []
            if args.store:
                from tcnet.store import RunWriter
                recorders = [RunWriter(args.store, f"ei-{rule}-{mode}")]
            t0 = time.perf_counter()
            res = tcnet.run(spec, recorders=recorders, progress=False)
            last = res.history.steps[-1].extra
            W = ", ".join(f"{w:.4f}" for w in res.result.x)
            print(f"| {rule} | {mode} | {res.result.status} | {res.result.steps} | ({W}) | "
                  f"{last['E']:.4f}, {last['I']:.4f} | {bool(last['stable'])} | {bool(last['paradoxical'])} | "
                  f"{time.perf_counter() - t0:.1f} s |", flush=True)


if __name__ == "__main__":
    main()
