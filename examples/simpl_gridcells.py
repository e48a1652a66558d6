"""SIMPL on the synthetic grid-cell benchmark: generate, fit, record, plot, time.

    .venv/bin/python examples/simpl_gridcells.py                 # 200 cells, 1 hour (the benchmark)
    .venv/bin/python examples/simpl_gridcells.py --cells 60 --duration 300   # a quick look

Writes OUT/benchmark.h5 (the data), OUT/runs.h5 (the run, readable with tcnet.store.read_run or
`tcnet show`), three PNG figures, and prints the table per iteration with the wall time of the fit
(generation excluded). The whole fit is what the issue's "under 2 minutes on 2 cores" refers to.
"""
import argparse
import time
from pathlib import Path

import numpy as np

from tcnet.store import RunWriter
from tcnet_plugins.simpl import data as simdata
from tcnet_plugins.simpl.figures import all_figures
from tcnet_plugins.simpl import fit
from tcnet_plugins.simpl.cli import metrics_table


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cells", type=int, default=200)
    p.add_argument("--duration", type=float, default=3600.0)
    p.add_argument("--iterations", type=int, default=10)
    p.add_argument("--align-degree", type=int, default=5,
                   help="5 (default here): polynomial alignment, which removes the smooth warp EM "
                        "inherits from the behaviour-fitted first tuning curves; 1: the published affine map")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="simpl_out")
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    data_path = out / "benchmark.h5"
    data = simdata.generate(args.seed, n_cells=args.cells, duration=args.duration)
    simdata.save(data_path, data)
    print(f"data: {args.cells} cells, {data['Y'].shape[0]} bins of {data['settings']['dt']} s, "
          f"{int(data['Y'].sum())} spikes -> {data_path}")

    writer = RunWriter(out / "runs.h5")
    t0 = time.perf_counter()
    res = fit(data_path, iterations=args.iterations, align_degree=args.align_degree, recorders=[writer])
    elapsed = time.perf_counter() - t0

    print("\n" + metrics_table(res.history.steps))
    final = res.final.state()
    print(f"\n{res.result.status}: {res.result.message}")
    print(f"final latent error {final.metrics['latent_error_cm']:.2f} cm; fit took {elapsed:.1f} s "
          f"(run {writer.run_id} in {out / 'runs.h5'})")
    truth = np.linalg.norm(data["Xb"] - data["Xt"], axis=1).mean() * 100
    print(f"behaviour error {truth:.2f} cm")
    for path in all_figures(res, out):
        print(f"figure: {path}")


if __name__ == "__main__":
    main()
