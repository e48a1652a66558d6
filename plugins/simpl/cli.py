"""`tcnet simpl generate OUT.h5` writes a synthetic benchmark; `tcnet simpl fit FILE` runs SIMPL on a
recording (.npz, HDF5 or NWB: docs/SIMPL.md), prints the table per iteration, and optionally records
the run (`--store`), writes the fitted latent and tuning curves (`--out`) and figures (`--figures`).
Every output is created through tcnet.store.new_file: an existing file is replaced only with
`--force`, and every output path is checked before anything is computed (`--store` appends a run to
a run store)."""
import time
from pathlib import Path

import numpy as np

from tcnet.store import check_new, new_file
from tcnet.validate import ConfigError, seed
from tcnet_plugins.simpl import data as simdata
from tcnet_plugins.simpl.core import BEHAVIOUR, CONFIG, SPACE_DEFAULTS, Simpl
from tcnet_plugins.simpl.estimator import SIMPL
from tcnet_plugins.simpl.files import read


def _generate(args) -> int:
    check_new(args.out, args.force)  # before the data set is computed
    seed("simpl", "--seed", args.seed)
    settings = {"kind": args.kind, "n_cells": args.cells, "duration": args.duration,
                "noise_timescale": args.noise_timescale}
    data = simdata.generate(args.seed, **settings)
    simdata.save(args.out, data, args.force)
    print(f"wrote {args.out}: {args.kind}, {data['counts'].shape[1]} cells, {data['counts'].shape[0]} bins, "
          f"{data['counts'].sum()} spikes")
    return 0


def metrics_table(history, unit="m") -> str:
    """One line per EM iteration: latent error (cm, or degrees on the circle; when the truth is
    known), train/validation log-likelihood (nats per spike), bits per spike."""
    scale, label = (100.0, "error (cm)") if unit == "m" else (180 / np.pi, "error (deg)")
    with_error = "latent_error" in history[0]
    head = f"{'iter':>4} " + (f"{label:>11} " if with_error else "")
    lines = [head + f"{'train LL':>9} {'val LL':>9} {'bits/spike':>10}"]
    for k, h in enumerate(history):
        err = f"{scale * h['latent_error']:>11.2f} " if with_error else ""
        lines.append(f"{k:>4} {err}{h['train_ll']:>9.4f} {h['val_ll']:>9.4f} {h['bits_per_spike']:>10.4f}")
    return "\n".join(lines)


def _fit(args) -> int:
    if args.out and not args.out.endswith(".npz"):
        raise ConfigError(f"simpl: --out must name a .npz file, got {args.out!r}")
    outputs = [args.out] if args.out else []
    if args.figures:
        from tcnet_plugins.simpl.figures import NAMES, all_figures

        Path(args.figures).mkdir(parents=True, exist_ok=True)
        outputs += [Path(args.figures) / name for name in NAMES]
    for path in outputs:
        check_new(path, args.force)
    arrays = read(args.data, dt=args.dt, series=args.series)
    if args.truth and "truth" not in arrays:
        raise ConfigError(f"simpl: --truth asks to score against the file's truth, but {args.data!r} has no truth array")
    if args.extent is not None and len(args.extent) % 2:
        raise ConfigError(f"simpl: --extent takes a LOW HIGH pair per axis, got {len(args.extent)} number(s)")
    extent = None if args.extent is None else np.reshape(args.extent, (-1, 2)).tolist()
    model = SIMPL(space=args.space, extent=extent, dt=arrays.get("dt"), bandwidth=args.bandwidth,
                  grid_spacing=args.grid_spacing, val_fraction=args.val_fraction, val_block=args.val_block,
                  iterations=args.iterations, speed=args.speed, align_degree=args.align_degree, tol=args.tol,
                  anneal=args.anneal, temper=args.temper, accelerate=args.accelerate,
                  accelerate_timescale=args.accelerate_timescale, seed=args.seed, store=args.store)
    t0 = time.perf_counter()
    model.fit(arrays["counts"], arrays["behaviour"], arrays["time"], missing=arrays.get("missing"),
              truth=arrays.get("truth") if args.truth else None)
    elapsed = time.perf_counter() - t0
    print(metrics_table(model.history_, model.network_.space.unit))
    measured = SPACE_DEFAULTS[args.space]["speed"] == BEHAVIOUR
    source = "given" if args.speed is not None else "measured from behaviour" if measured else "default"
    print(f"random-walk speed {model.speed_:.3g} {model.network_.space.unit}/s ({source})")
    print(f"{model.result_.result.status}: {model.result_.result.message}; total {elapsed:.1f} s")
    if args.store:
        print(f"recorded as run {model.run_id_} in {args.store}")
    if args.out:
        with new_file(args.out, args.force) as partial, open(partial, "wb") as out:
            np.savez(out, latent=model.latent_, time=model.network_.arrays["time"], fields=model.fields_,
                     **{f"axis_{i}": a for i, a in enumerate(model.axes_)})
        print(f"wrote {args.out}")
    if args.figures:
        for path in all_figures(model, args.figures, args.force):
            print(f"wrote {path}")
    return 0


def add_command(subparsers) -> None:
    """`tcnet simpl generate` and `tcnet simpl fit`."""
    p = subparsers.add_parser("simpl", help="SIMPL: latent trajectories and tuning curves from spikes")
    sub = p.add_subparsers(dest="simpl_command", metavar="ACTION", required=True)
    g = sub.add_parser("generate", help="write a synthetic benchmark (HDF5, the layout `fit` reads)")
    g.add_argument("out")
    g.add_argument("--kind", choices=sorted(simdata.KINDS), default="grid")
    g.add_argument("--cells", type=int, default=200)
    g.add_argument("--duration", type=float, default=3600.0, help="seconds")
    g.add_argument("--noise-timescale", type=float, default=simdata.COMMON["noise_timescale"],
                   help="time constant (s) of the behaviour's noise")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--force", action="store_true", help="replace an existing OUT (never a file another tcnet "
                   "process is writing)")
    g.set_defaults(handler=_generate)
    f = sub.add_parser("fit", help="fit SIMPL to a recording (.npz, .h5/.hdf5, .nwb), print the table per iteration")
    f.add_argument("data")
    f.add_argument("--truth", action="store_true", help="score each iteration against the file's truth array")
    f.add_argument("--space", choices=("linear", "angular"), default=CONFIG["space"],
                   help="linear (behaviour in m, 1 or 2 columns) or angular (one column, rad)")
    f.add_argument("--extent", type=float, nargs="+", metavar="LOW HIGH",
                   help="the environment per axis (m), e.g. 0 1 0 1; default: inferred from the latent")
    f.add_argument("--dt", type=float, help="bin width (s); default: the file's dt, else the median time step")
    f.add_argument("--series", help="NWB: the name of the behavioural SpatialSeries, if there are several")
    f.add_argument("--iterations", type=int, default=Simpl.SETTINGS.defaults["steps"])
    f.add_argument("--tol", type=float, default=Simpl.SETTINGS.defaults["tol"],
                   help="stop once the validation log-likelihood rises by no more than this (nats/spike)")
    f.add_argument("--speed", type=float, help="random-walk speed scale (units/s; default: behaviour's own on a "
                   "line or plane, 1 rad/s on the circle)")
    f.add_argument("--align-degree", type=int, default=Simpl.SETTINGS.defaults["align_degree"],
                   help="degree of the polynomial map aligning the latent to behaviour (1: affine, as "
                        "published, a rotation on the circle; 0: none)")
    f.add_argument("--anneal", type=int, help="E-steps with a tempered likelihood, at most all iterations but the "
                   "last (0: none, the published EM; default: all but the last on a line or plane, 0 on the circle)")
    f.add_argument("--temper", type=float, default=Simpl.SETTINGS.defaults["temper"],
                   help="exponent of the likelihood in the first E-step, rising to 1 over --anneal E-steps")
    f.add_argument("--accelerate", type=float, help="over-relaxation of each E-step's smoothed move, kept when the "
                   "validation log-likelihood rises (0: plain EM; default 1 on a line or plane, 0 on the circle)")
    f.add_argument("--accelerate-timescale", type=float, default=Simpl.SETTINGS.defaults["accelerate_timescale"],
                   help="width (s) of the smoothing of the over-relaxed move")
    f.add_argument("--bandwidth", type=float, help="KDE bandwidth (units; default 0.02 m, 0.15 rad)")
    f.add_argument("--grid-spacing", type=float, help="tuning-curve grid spacing (units; default 0.02 m, 3 deg)")
    f.add_argument("--val-fraction", type=float, default=CONFIG["val_fraction"],
                   help="held-out fraction of each cell's time")
    f.add_argument("--val-block", type=float, default=CONFIG["val_block"], help="length of held-out blocks (s)")
    f.add_argument("--seed", type=int, default=0, help="seed of the validation mask")
    f.add_argument("--store", help="record the run in this HDF5 run store (appended)")
    f.add_argument("--out", help="write the fitted latent, time, fields and grid axes to this new .npz")
    f.add_argument("--figures", help="write figures (PNG) to this folder")
    f.add_argument("--force", action="store_true", help="replace existing --out and figure files (never a file "
                   "another tcnet process is writing)")
    f.set_defaults(handler=_fit)
