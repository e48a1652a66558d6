"""Reading the table of a file of 200 runs of an N = 300 preparatory network, as a ratio to one
numpy.linalg.eig of one of its networks measured in the same test, printed at the session's end.
The goal (issue 30): `tcnet.open(f).runs` and `tcnet compare`'s table cost less than 2
eigendecompositions in total, since the summaries are stored with the runs and nothing is
recomputed (tests/test_summaries.py counts that no eig runs).

    .venv/bin/python -m pytest tests/benchmarks/test_table_speed.py -m benchmark --benchmark-enable -s
"""
import numpy as np
import pytest
from threadpoolctl import threadpool_limits

import tcnet
from tcnet.store import RunWriter, compare_table

from _speed_table import NOTES

RUNS, N = 200, 300


@pytest.fixture(scope="module")
def big_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("table") / "runs.h5"
    for seed in range(RUNS):
        tcnet.run({"dynamics": {"name": "linear_decay", "seed": seed, "N": N, "n_frac": 0.1},
                   "loss": [{"name": "decay"}, {"name": "stability", "weight": 1e5}],
                   "optimizer": {"name": "adam", "steps": 1, "lr": 0.01}},
                  recorders=[RunWriter(path)], progress=False)
    return path


def best(f, rounds=5) -> float:
    import time

    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        f()
        times.append(time.perf_counter() - t0)
    return min(times)


@pytest.mark.benchmark
def test_a_table_of_200_runs_costs_less_than_two_eigs(big_file, benchmark):
    J = np.asarray(tcnet.open(big_file).network("run-0001").state().J)
    with threadpool_limits(1, user_api="blas"):  # the eig as a run computes it (one BLAS thread)
        eig = best(lambda: np.linalg.eig(J))
    tcnet.open(big_file).runs  # pandas imported, plugins registered
    runs = best(lambda: tcnet.open(big_file).runs)
    compare = best(lambda: compare_table([big_file]))
    benchmark.pedantic(lambda: tcnet.open(big_file).runs, rounds=3)
    NOTES.append(f"table of {RUNS} runs at N = {N}: tcnet.open(f).runs {runs / eig:.2f} eigs, compare_table "
                 f"{compare / eig:.2f} eigs (one eig: {eig * 1e3:.1f} ms)")
    assert len(tcnet.open(big_file).runs) == RUNS  # the ratios are reported, not asserted (no timed asserts)
