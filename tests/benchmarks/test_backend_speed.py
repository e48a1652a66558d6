"""Value and gradient of L1 + alpha L2 + beta L3 (alpha 1e5, beta 0.01) for linear_decay with
n/N = 0.1, through the framework's Objective (J = J0 + U V, gradient w.r.t. U, V), per backend:
"eig" (generic autograd through tcnet.linalg.eig), "fused" and "lyapunov"
(tcnet_plugins.preparatory.backends). Each is reported as a ratio to a bare numpy.linalg.eig of
the same J, measured in the same session and interleaved with the candidate (one eig right before
each timed round, via pedantic's untimed setup), so that load from other processes on a shared
machine hits both alike; ratios of minima are the robust figure. Nothing asserts on time.

    make bench        # or: .venv/bin/python -m pytest tests/benchmarks -m benchmark --benchmark-enable
"""
import time
import warnings

import numpy as np
import pytest

from _speed_table import NOTES, RATIOS
from tcnet import Objective, Term
from tcnet_plugins.preparatory import Decay, LinearDecay, Stability
from tcnet_plugins.smoothness import Smoothness

SIZES = (100, 300, 500, 1000)
ROUNDS = {100: 30, 300: 10, 500: 5, 1000: 3}
PATHS = ("numpy.linalg.eig", "eig", "fused", "lyapunov")


def objective(N, backend="eig"):
    net = LinearDecay.create(seed=0, N=N, n_frac=0.1, backend=backend)
    terms = [Term(Decay(), 1.0), Term(Stability(), 1e5), Term(Smoothness(), 0.01)]
    return Objective(net, terms), net.vector()


def matrix(N):
    obj, theta = objective(N)
    return np.array(obj.dynamics.state(theta).J)


@pytest.mark.benchmark
@pytest.mark.parametrize("N", SIZES)
@pytest.mark.parametrize("path", PATHS)
def test_value_and_gradient_vs_eig(benchmark, path, N):
    J = matrix(N)
    rounds = ROUNDS[N] if not (path == "eig" and N >= 1000) else 2
    if path == "numpy.linalg.eig":
        benchmark.pedantic(np.linalg.eig, args=(J,), rounds=rounds, warmup_rounds=1)
        benchmark.extra_info.update(N=N)
        return
    obj, theta = objective(N, path)
    eig_times = []

    def eig_first():
        t0 = time.perf_counter()
        np.linalg.eig(J)
        eig_times.append(time.perf_counter() - t0)
        return (theta,), {}

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", np.exceptions.ComplexWarning)
        benchmark.pedantic(obj.evaluate, setup=eig_first, rounds=rounds, warmup_rounds=1)
    base_min, base_median = min(eig_times), float(np.median(eig_times))
    ratio_min = benchmark.stats.stats.min / base_min
    ratio_median = benchmark.stats.stats.median / base_median
    benchmark.extra_info.update(N=N, eig_min_s=base_min, eig_median_s=base_median,
                                ratio_min=ratio_min, ratio_median=ratio_median)
    RATIOS.append((f"{path} value+grad", N, ratio_min, ratio_median))


@pytest.mark.benchmark
@pytest.mark.slow
def test_cost_exponent(benchmark):
    """Fit t ~ N^p from N = 100 to 2000 for the fused value+gradient and for numpy.linalg.eig,
    timed interleaved (eig, fused, eig, fused, ...) at each N."""
    sizes = (100, 200, 400, 700, 1000, 1400, 2000)
    seconds = {"numpy.linalg.eig": [], "fused": []}

    def measure():
        for N in sizes:
            obj, theta = objective(N, "fused")
            J = np.array(obj.dynamics.state(theta).J)
            obj.evaluate(theta)
            times = {k: [] for k in seconds}
            for _ in range(5 if N <= 400 else 2):
                for what, f in (("numpy.linalg.eig", lambda: np.linalg.eig(J)), ("fused", lambda: obj.evaluate(theta))):
                    t0 = time.perf_counter()
                    f()
                    times[what].append(time.perf_counter() - t0)
            for what in seconds:
                seconds[what].append(min(times[what]))

    benchmark.pedantic(measure, rounds=1, iterations=1)
    logN = np.log(sizes)
    for what, ts in seconds.items():
        p = np.polyfit(logN, np.log(ts), 1)[0]
        p_big = np.polyfit(logN[3:], np.log(ts[3:]), 1)[0]
        benchmark.extra_info[f"exponent_{what}"] = p
        benchmark.extra_info[f"exponent_{what}_N700_2000"] = p_big
        benchmark.extra_info[f"seconds_{what}"] = ts
        NOTES.append(f"exponent of cost vs N (100..2000): {what:<18} {p:.2f} (700..2000: {p_big:.2f}); "
                     f"seconds {', '.join(f'{t:.3g}' for t in ts)}")
    for N, e, f in zip(sizes, seconds["numpy.linalg.eig"], seconds["fused"]):
        RATIOS.append(("fused value+grad (fit run)", N, f / e, float("nan")))
