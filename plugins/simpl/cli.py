"""`tcnet simpl generate OUT.h5` writes a synthetic benchmark; `tcnet simpl fit FILE` runs SIMPL on a
recording (.npz, HDF5 or NWB: docs/SIMPL.md), prints the table per iteration, and optionally records
the run (`--store`), writes the fitted latent and tuning curves (`--out`) and figures (`--figures`).
Every output is created through tcnet.store.new_file: an existing file is replaced only with
`--force`, and every output path is checked before anything is computed (`--store` appends a run to
a run store).

The flags of `fit` that set a fit's settings are made from their declarations (estimator.KEYWORDS:
the `simpl_latent` and `simpl` settings): `--grid-margin` for grid_margin, of the setting's type,
with its doc, unit and default."""
import time
from pathlib import Path

import numpy as np

from tcnet.store import check_new, new_file
from tcnet.store.identity import same_file
from tcnet.settings import Array, Choice, Integer, Real
from tcnet.validate import ConfigError, seed
from tcnet_plugins.simpl import data as simdata
from tcnet_plugins.simpl.dynamics import BEHAVIOUR, SPACE_DEFAULTS
from tcnet_plugins.simpl.estimator import KEYWORDS, OWN, RENAMED, SIMPL
from tcnet_plugins.simpl.files import describe, read


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
    settings = {s.name: _value(s, getattr(args, s.name)) for s in KEYWORDS}
    SIMPL(**settings, seed=args.seed)  # every setting checked before any file is read or made
    if args.out and not args.out.endswith(".npz"):
        raise ConfigError(f"simpl: --out must name a .npz file, got {args.out!r}")
    outputs = [args.out] if args.out else []
    if args.figures:
        from tcnet_plugins.simpl.figures import NAMES, all_figures

        Path(args.figures).mkdir(parents=True, exist_ok=True)
        outputs += [Path(args.figures) / name for name in NAMES]
    for path in outputs:
        check_new(path, args.force)
        if same_file(path, args.data):
            raise ConfigError(f"simpl: {path} is the recording being fitted; refusing to write over it (name "
                              "another output)")
    arrays = read(args.data, dt=args.dt, series=args.series, space=settings["space"])
    if args.truth and "truth" not in arrays:
        raise ConfigError(f"simpl: --truth asks to score against the file's truth, but {args.data!r} has no truth array")
    report = arrays["report"]
    model = SIMPL(**{**settings, "dt": arrays.get("dt"), "space": settings["space"] or arrays.get("space")},
                  seed=args.seed, store=args.store)
    try:  # every check of the data, the split and the grid's size, before anything large is allocated
        net = model.network(arrays["counts"], arrays["behaviour"], arrays["time"], missing=arrays.get("missing"),
                            truth=arrays.get("truth") if args.truth else None)
    except ConfigError as err:
        raise ConfigError(f"{err} [{read_as(report)}]" if report["format"] == "NWB" else str(err)) from None
    for line in describe(report):
        print(line)
    if args.dry_run:
        _plan(model, net)
        return 0
    t0 = time.perf_counter()
    model.fit_network(net, source=report)
    elapsed = time.perf_counter() - t0
    print(metrics_table(model.history_, model.network_.space.unit))
    measured = SPACE_DEFAULTS[model.network_.space.kind]["speed"] == BEHAVIOUR
    source = "given" if args.speed is not None else "measured from behaviour" if measured else "default"
    print(f"random-walk speed {model.speed_:.3g} {model.network_.space.unit}/s ({source})")
    print(f"{model.result_.result.status}: {model.result_.result.message}; total {elapsed:.1f} s")
    if args.store:
        print(f"recorded as run {model.run_id_} in {args.store}")
    if args.out:
        with new_file(args.out, args.force) as partial, open(partial, "wb") as out:
            np.savez(out, latent=model.latent_, time=model.network_.data["time"], fields=model.fields_,
                     **{f"axis_{i}": a for i, a in enumerate(model.axes_)})
        print(f"wrote {args.out}")
    if args.figures:
        for path in all_figures(model, args.figures, args.force):
            print(f"wrote {path}")
    return 0


def read_as(report) -> str:
    """How behaviour was read from an NWB file, for an error about it or its grid: the series'
    unit, conversion and offset, the SI unit and the space."""
    return (f"behaviour read from NWB series {report['series']!r}: unit {report['unit']!r}, conversion "
            f"{report['conversion']:g}, offset {report['offset']:g} -> {report['si_unit']}, space {report['space']}")


def _plan(model, net) -> None:
    """What `--dry-run` says after the checks passed: the space, the grid at behaviour, the prior's speed."""
    shape = net.check_grid(net.arrays["latent"])
    speed = model._optimizer().for_dynamics(net).settings["speed"]
    print(f"checks passed: space {net.space.kind}, {net.counts.shape[0]} bins x {net.counts.shape[1]} cells, "
          f"grid {' x '.join(map(str, shape))} at behaviour, random-walk speed {speed:.3g} {net.space.unit}/s; "
          "dry run: nothing fitted")


def _add_flag(parser, setting) -> None:
    """`--name-with-dashes` for a declared setting: its type (a Choice's options; an Array of
    pairs as LOW HIGH numbers), its declared default, its doc and unit as the help."""
    unit = f" [{setting.unit}]" if setting.unit else ""
    default = "" if setting.default is None else f" (default {setting.default})"
    kind = {"default": setting.default, "help": (setting.doc + unit + default).replace("%", "%%")}
    if isinstance(setting, Choice):
        kind["choices"] = setting.options
    elif isinstance(setting, Integer):
        kind["type"] = int
    elif isinstance(setting, Real):
        kind["type"] = float
    elif isinstance(setting, Array) and setting.shape == (None, 2):
        kind.update(type=float, nargs="+", metavar="LOW HIGH")
    else:
        raise TypeError(f"simpl fit: no command-line flag for the setting {setting.name} ({type(setting).__name__})")
    parser.add_argument("--" + setting.name.replace("_", "-"), **kind)


def _value(setting, given):
    """The setting's value from its flag: pairs of numbers for an Array of pairs."""
    if not isinstance(setting, Array) or given is None:
        return given
    if len(given) % 2:
        raise ConfigError(f"simpl: --{setting.name.replace('_', '-')} takes a LOW HIGH pair per axis, "
                          f"got {len(given)} number(s)")
    return np.reshape(given, (-1, 2)).tolist()


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
    f = sub.add_parser("fit", help="fit SIMPL to a recording (.npz, .h5/.hdf5, .nwb), print the table per iteration",
                       description="A setting whose help says 'None: ...' takes that value when its flag is not "
                       "given. The settings are those of `tcnet plugins simpl_latent` and `tcnet plugins simpl` "
                       "(" + "; ".join(f"--{k}: the optimizer's {s}" for s, k in RENAMED.items()) + ").")
    f.add_argument("data")
    f.add_argument("--truth", action="store_true", help="score each iteration against the file's truth array")
    f.add_argument("--series", help="NWB: the name of the behavioural SpatialSeries, if there are several")
    for setting in KEYWORDS:
        _add_flag(f, setting)
    f.add_argument("--dry-run", action="store_true", help="say what was read and check the settings, the data "
                   "and the grid's size, then stop before fitting")
    f.add_argument("--seed", type=int, default=OWN["seed"][0], help=OWN["seed"][1])
    f.add_argument("--store", help="record the run in this HDF5 run store (appended)")
    f.add_argument("--out", help="write the fitted latent, time, fields and grid axes to this new .npz")
    f.add_argument("--figures", help="write figures (PNG) to this folder")
    f.add_argument("--force", action="store_true", help="replace existing --out and figure files (never a file "
                   "another tcnet process is writing)")
    f.set_defaults(handler=_fit)
