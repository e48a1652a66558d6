"""Study throughput: the same small preparatory study (8 runs of linear_decay, N = 100) with a
local pool of 2 workers, as a ratio to 1 worker measured in the same test (expect close to 2 on 2
free cores; process start-up is included, as a user sees it).

On a shared machine other processes take cores, so the test also measures, just before, the
parallel speed-up the machine gives right now to two pure-Python busy loops in two processes;
`efficiency` = study ratio / that ratio separates tcnet's overhead from the machine's load.

    .venv/bin/python -m pytest tests/benchmarks/test_study_throughput.py -m benchmark --benchmark-enable -s
"""
import itertools
import multiprocessing
import time

import pytest

from tcnet.study import Study

BASE = {"dynamics": {"name": "linear_decay", "N": 100, "n_frac": 0.1, "tau": 0.01},
        "loss": [{"name": "decay"}, {"name": "stability", "weight": 1e5}, {"name": "smoothness", "weight": 0.01}],
        "optimizer": {"name": "staged", "stages": [{"name": "adam", "steps": 30, "lr": 0.01},
                                                   {"name": "lbfgs", "max_iter": 60}]}}


def busy(n: int) -> float:
    total = 0
    for i in range(n):
        total += i * i
    return total


def machine_parallel_ratio(n=5_000_000) -> float:
    """Time of two busy loops one after the other / time of the two in 2 running processes."""
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        pool.map(busy, [1, 1])  # processes up
        t0 = time.perf_counter()
        busy(n)
        busy(n)
        serial = time.perf_counter() - t0
        t0 = time.perf_counter()
        pool.map(busy, [n, n], chunksize=1)
        return serial / (time.perf_counter() - t0)


@pytest.mark.benchmark
def test_two_workers_vs_one_throughput_ratio(benchmark, tmp_path):
    study = Study(BASE, grid={"dynamics.n_frac": [0.1, 0.2]}, repeats=4, seed=3, name="bench")
    files = (tmp_path / f"run{i}.h5" for i in itertools.count())

    def run(workers):
        report = study.run(next(files), workers=workers, progress=False)
        assert len(report.done) == 8

    machine = machine_parallel_ratio()
    t0 = time.perf_counter()
    run(1)
    one = time.perf_counter() - t0
    benchmark.pedantic(run, args=(2,), rounds=1, iterations=1)
    two = benchmark.stats.stats.min
    ratio = one / two
    benchmark.extra_info.update(one_worker_s=one, two_workers_s=two, throughput_ratio=ratio,
                                machine_parallel_ratio=machine, efficiency=ratio / machine)
    print(f"\nstudy of 8 runs: 1 worker {one:.2f} s, 2 workers {two:.2f} s, throughput ratio {ratio:.2f}; "
          f"machine's 2-process ratio now {machine:.2f}; efficiency {ratio / machine:.2f}")
