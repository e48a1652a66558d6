"""The three constraint methods on the slides' toy problem, from the slides' start x = (2, 1).

    minimize f(x) = -exp(-(x - u)^T C (x - u)),  u = (1, 1.5), C = [[1, .7], [.7, 1]],  subject to x2 = 3

Prints, per method: final x, constraint violation |x2 - 3|, distance to the exact constrained
optimum x* = (-0.05, 3), and the iterations used. The alternating scheme is shown twice: with the
slides' 1000 iterations and run until its iterate stops moving, where it sits at its derived fixed
point, which is biased away from x*. The Lagrangian method is shown without augmentation (rho = 0:
x* is an unstable point of it on this problem, see `lagrangian_discrete_critical_rho`) and with rho = 1.

Run: .venv/bin/python examples/constraint_methods.py
"""
import numpy as np

import tcnet
from tcnet_plugins.constraints.toy_gaussian import (
    SLIDES_START, alternating_fixed_point, constrained_optimum, lagrangian_critical_rho, lagrangian_discrete_critical_rho,
    slides_methods, toy_spec,
)


def main():
    x_star, lam_star = constrained_optimum()
    methods = slides_methods()
    rows = [("alternating (slides, 1000 it.)", methods["alternating"]),
            ("alternating (to convergence)", {**methods["alternating"], "steps": 100000, "tol": 1e-13}),
            ("lagrangian (rho = 0, basic)", methods["lagrangian_basic"]),
            ("lagrangian (rho = 1)", methods["lagrangian"]),
            ("penalty (mu -> 50)", methods["penalty"])]
    print(f"start {SLIDES_START}, constrained optimum x* = ({x_star[0]:.6g}, {x_star[1]:.6g}), lambda* = {lam_star:.6f}")
    print(f"alternating fixed point (derived): {np.array2string(alternating_fixed_point(), precision=8)}")
    print(f"lagrangian: x* is stable for rho > {lagrangian_discrete_critical_rho():.4f} at lr = multiplier_lr = 0.05 "
          f"(> {lagrangian_critical_rho():.4f} in the small-step limit)\n")
    header = f"{'method':<32}{'final x':<28}{'|x2 - 3|':>12}{'|x - x*|':>12}{'iterations':>12}  {'multiplier':>11}"
    print(header)
    print("-" * len(header))
    for label, method in rows:
        res = tcnet.run(toy_spec(method), progress=False)
        x = res.final.arrays["x"][0]
        last = res.history.steps[-1].extra
        lam = f"{last['multiplier']:.6f}" if "multiplier" in last else "n/a"
        print(f"{label:<32}({x[0]: .8f}, {x[1]: .8f})  {abs(x[1] - 3.0):12.3e}{np.linalg.norm(x - x_star):12.3e}"
              f"{res.result.steps:12d}  {lam:>11}")


if __name__ == "__main__":
    main()
