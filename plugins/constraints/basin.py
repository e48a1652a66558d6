"""Basin map of the constraint methods on the toy Gaussian problem (`tcnet basin-map`).

A grid of starting points is run through each method, and each point is marked by whether the
method ends within `tol` of the exact constrained optimum. The toy network holds all grid points as
independent copies of the 2-D problem, so each method runs once, vectorized, through the same
generic optimizer code as a single run; per-point results are identical to separate runs because
every update is per copy. Runs use each method's fixed step budget (`tol` stops are disabled, as
they would apply to all copies together).
"""
import os
from pathlib import Path

import numpy as np

import tcnet
from tcnet.resources import FLOAT, require
from tcnet.validate import ConfigError, integer, output_file, positive, real
from tcnet_plugins.constraints.toy_gaussian import SLIDES_START, constrained_optimum, slides_methods, toy_spec


def basin_map(methods: dict, grid=31, x1=(-4.0, 6.0), x2=(-2.0, 8.0), tol=0.05, steps=None, plugins=None) -> dict:
    """For each method spec: the grid axes, the final distance to the optimum per start point
    (shape (grid, grid), rows along x2) and the fraction of points that end within `tol`."""
    integer("basin-map", "grid", grid, low=2)
    positive("basin-map", "tol", tol)
    for name, (lo, hi) in (("x1", x1), ("x2", x2)):
        real("basin-map", f"{name} upper bound", hi, low=real("basin-map", f"{name} lower bound", lo), low_open=True)
    if steps is not None:
        integer("basin-map", "steps", steps, low=1)
    registry = plugins or tcnet.registry()
    budget = steps if steps is not None else max(
        m.get("steps", registry.get("optimizer", m["name"]).SETTINGS.defaults.get("steps", 0)) for m in methods.values())
    # a run's history holds every step's points (2 floats each) and their per-point state (at most
    # 2 floats: a multiplier, a velocity); tracemalloc measures 20 to 28 bytes per point and step
    require("basin-map", f"grid {grid} ({grid * grid} start points) with {budget} steps",
            4 * FLOAT * float(grid) ** 2 * (budget + 1))
    a1, a2 = np.linspace(*x1, grid), np.linspace(*x2, grid)
    X1, X2 = np.meshgrid(a1, a2)
    starts = np.column_stack([X1.ravel(), X2.ravel()])
    optimum, _ = constrained_optimum()
    out = {}
    for name, method in methods.items():
        method = {**method, "tol": 0.0, **({"steps": steps} if steps is not None else {})}
        res = tcnet.run(toy_spec(method, start=starts), progress=False, plugins=plugins)
        distance = np.linalg.norm(res.final.arrays["x"] - optimum, axis=1).reshape(X1.shape)
        out[name] = {"x1": a1, "x2": a2, "distance": distance, "fraction": float(np.mean(distance <= tol)),
                     "steps": res.result.steps}
    return out


FIGURE_SUFFIXES = (".png", ".pdf", ".svg")
DEFAULT_NAME = "basin_map.png"


def figure_path(out: str, force: bool = False) -> Path:
    """The file `--out` asks for, checked before anything is computed: a path ending in .png, .pdf
    or .svg (the format follows the suffix), or an existing directory, which receives
    basin_map.png. An existing file is replaced only with `force` (tcnet.store.check_new)."""
    from tcnet.store import check_new
    path = Path(out)
    if path.is_dir():
        path = path / DEFAULT_NAME
    elif out.endswith(("/", os.sep)):
        raise ConfigError(f"basin-map: --out {out!r} names a directory that does not exist")
    else:
        path = output_file("basin-map", "--out", out, FIGURE_SUFFIXES)
    return check_new(path, force)


def plot_basin_map(result: dict, tol: float, path, force: bool = False) -> None:
    """One panel per method: points reaching the optimum within tol (dark) or not (light), written
    to `path` (a new file, see tcnet.store.new_file; the format follows its suffix)."""
    from tcnet.plot import plt, save_figure
    from matplotlib.colors import ListedColormap

    optimum, _ = constrained_optimum()
    fig, axes = plt.subplots(1, len(result), figsize=(4.0 * len(result), 4.0), squeeze=False)
    for ax, (name, r) in zip(axes[0], result.items()):
        extent = [r["x1"][0], r["x1"][-1], r["x2"][0], r["x2"][-1]]
        ax.imshow(r["distance"] <= tol, origin="lower", extent=extent, aspect="auto", vmin=0, vmax=1,
                  cmap=ListedColormap(["#f2e6d9", "#2b6a99"]), interpolation="nearest")
        ax.plot(*optimum, "*", color="#d62728", ms=14, label="constrained optimum")
        ax.plot(*SLIDES_START, "o", color="k", ms=6, label="slides' start")
        ax.axhline(optimum[1], color="#d62728", lw=0.8, ls="--")
        ax.set_title(f"{name}: {100 * r['fraction']:.1f}% reach\n(tol {tol:g}, {r['steps']} steps)", fontsize=9)
        ax.set_xlabel("x1 (start)")
        ax.set_ylabel("x2 (start)")
    axes[0][0].legend(loc="lower left", fontsize=7)
    save_figure(fig, path, force=force, dpi=120)


def _command(args) -> int:
    methods = slides_methods()
    unknown = sorted(set(args.methods) - set(methods))
    if unknown:
        raise ConfigError(f"basin-map: unknown method(s) {', '.join(unknown)}; allowed: {', '.join(methods)}")
    out = figure_path(args.out, args.force)
    result = basin_map({m: methods[m] for m in args.methods}, grid=args.grid, x1=tuple(args.x1),
                       x2=tuple(args.x2), tol=args.tol, steps=args.steps or None, plugins=args.registry)
    plot_basin_map(result, args.tol, out, args.force)
    print(f"basin map of the toy Gaussian ({args.grid}x{args.grid} starts, x1 in {args.x1}, x2 in {args.x2}), "
          f"reached = within {args.tol:g} of the constrained optimum:")
    for name, r in result.items():
        print(f"  {name:<17} {100 * r['fraction']:6.1f}%  ({r['steps']} steps)")
    print(f"wrote {out}")
    return 0


def add_command(subparsers) -> None:
    p = subparsers.add_parser("basin-map", help="which starting points each constraint method brings to the "
                              "toy Gaussian's constrained optimum (PNG + fractions)")
    p.add_argument("--out", default=DEFAULT_NAME, help="figure file to write, .png, .pdf or .svg (the format "
                   f"follows the suffix), or an existing directory to write {DEFAULT_NAME} in (default: "
                   f"{DEFAULT_NAME}); the path written is printed")
    p.add_argument("--force", action="store_true", help="replace an existing --out file (never a file another "
                   "tcnet process is writing)")
    p.add_argument("--grid", type=int, default=31, help="grid points per axis (default: 31)")
    p.add_argument("--x1", type=float, nargs=2, default=[-4.0, 6.0], metavar=("LO", "HI"), help="start x1 range")
    p.add_argument("--x2", type=float, nargs=2, default=[-2.0, 8.0], metavar=("LO", "HI"), help="start x2 range")
    p.add_argument("--tol", type=float, default=0.05, help="distance to the optimum that counts as reached")
    p.add_argument("--steps", type=int, default=3000,
                   help="steps per method, the same budget for all (default: 3000; 0 = each method's own: "
                        "alternating 1000 as in the slides, lagrangian 20000, penalty 3000)")
    p.add_argument("--methods", nargs="+", default=list(slides_methods()), metavar="METHOD",
                   help="methods to map (default: all)")
    p.set_defaults(handler=_command)
