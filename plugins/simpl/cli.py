"""`tcnet simpl generate OUT.h5` writes the synthetic grid-cell benchmark; `tcnet simpl fit DATA.h5`
runs the EM, prints the table per iteration, and optionally records the run (`--store`) and draws
figures (`--figures DIR`)."""
import time

import numpy as np

from tcnet_plugins.simpl import data as simdata
from tcnet_plugins.simpl.core import CONFIG, Simpl, fit


def _generate(args) -> int:
    from tcnet.store import check_new

    check_new(args.out, args.force)  # before the data set is computed
    settings = {"n_cells": args.cells, "duration": args.duration, "noise_timescale": args.noise_timescale}
    data = simdata.generate(args.seed, **settings)
    simdata.save(args.out, data, args.force)
    err = 100 * np.linalg.norm(data["Xb"] - data["Xt"], axis=1).mean()
    print(f"wrote {args.out}: {data['Y'].shape[1]} cells, {data['Y'].shape[0]} bins, "
          f"{data['Y'].sum()} spikes, behaviour error {err:.1f} cm")
    return 0


def metrics_table(steps) -> str:
    """One line per EM iteration: latent error (cm), train/validation log-likelihood (nats per
    spike), bits per spike, wall time (s)."""
    lines = [f"{'iter':>4} {'error (cm)':>10} {'train LL':>9} {'val LL':>9} {'bits/spike':>10} {'t (s)':>7}"]
    for s in steps:
        e = s.extra
        lines.append(f"{s.step:>4} {e['latent_error_cm']:>10.2f} {e['train_ll']:>9.4f} {e['val_ll']:>9.4f} "
                     f"{e['bits_per_spike']:>10.4f} {s.wall_time:>7.1f}")
    return "\n".join(lines)


def _fit(args) -> int:
    recorders = []
    if args.store:
        from tcnet.store import RunWriter

        recorders.append(RunWriter(args.store))
    t0 = time.perf_counter()
    res = fit(args.data, seed=args.seed, bandwidth=args.bandwidth, recorders=recorders,
              iterations=args.iterations, speed=args.speed, align_degree=args.align_degree)
    elapsed = time.perf_counter() - t0
    print(metrics_table(res.history.steps))
    print(f"{res.result.status}: {res.result.message}; total {elapsed:.1f} s")
    if recorders:
        print(f"recorded as run {recorders[0].run_id} in {args.store}")
    if args.figures:
        from tcnet_plugins.simpl.figures import all_figures

        for path in all_figures(res, args.figures):
            print(f"wrote {path}")
    return 0


def add_command(subparsers) -> None:
    """`tcnet simpl generate` and `tcnet simpl fit`."""
    p = subparsers.add_parser("simpl", help="SIMPL: latent trajectories and tuning curves from spikes")
    sub = p.add_subparsers(dest="simpl_command", metavar="ACTION", required=True)
    g = sub.add_parser("generate", help="write the synthetic grid-cell benchmark (HDF5)")
    g.add_argument("out")
    g.add_argument("--cells", type=int, default=200)
    g.add_argument("--duration", type=float, default=3600.0, help="seconds")
    g.add_argument("--noise-timescale", type=float, default=simdata.DEFAULTS["noise_timescale"],
                   help="time constant (s) of the behaviour's noise")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--force", action="store_true", help="replace an existing OUT (never a file another tcnet "
                   "process is writing)")
    g.set_defaults(handler=_generate)
    f = sub.add_parser("fit", help="fit SIMPL to a benchmark file, print the table per iteration")
    f.add_argument("data")
    f.add_argument("--iterations", type=int, default=Simpl.defaults["iterations"])
    f.add_argument("--speed", type=float, default=Simpl.defaults["speed"], help="random-walk speed scale (m/s)")
    f.add_argument("--align-degree", type=int, default=Simpl.defaults["align_degree"],
                   help="degree of the polynomial map aligning the latent to behaviour (1: affine, as "
                        "published; 0: none)")
    f.add_argument("--bandwidth", type=float, default=CONFIG["bandwidth"], help="KDE bandwidth (m)")
    f.add_argument("--seed", type=int, default=0, help="seed of the validation mask")
    f.add_argument("--store", help="record the run in this HDF5 store")
    f.add_argument("--figures", help="write figures (PNG) to this folder")
    f.set_defaults(handler=_fit)
