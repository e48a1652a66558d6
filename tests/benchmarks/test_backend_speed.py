"""Value and gradient of the preparatory objective L1 + alpha L2 + beta L3 (alpha 1e5, beta 0.01,
linear_decay with n/N = 0.1), as a ratio to a bare numpy.linalg.eig of the same J:

- ``default``: the objective exactly as `tcnet train` builds it (no backend named, so "auto");
- ``eig``, ``fused``, ``lyapunov``: the same with that backend named;
- ``composition``: the default plus a user term that reads the state's eigenvalues, in the style
  of docs/PLUGINS.md (it shares the state's one eigendecomposition);
- ``torch``: the same loss in PyTorch (torch.linalg.eig autograd, gradient w.r.t. J; see
  benchmarks/compare_torch.py), when torch is installed.

The gradient is with respect to theta = (U, V) through the normalization, as an optimizer sees it.
Each baseline eig runs right before each timed round (pedantic's untimed setup), so that load
from other processes on a shared machine hits both alike, and each round is divided by its own
eig: the median of these paired ratios is the robust figure (their minimum is printed too).
Nothing asserts on time. `make bench` prints the ratios as one table (see _speed_table.py).

Threads: both sides run with the BLAS threads `tcnet train` evaluates with inside `tcnet.run`
(tcnet.threads.auto_threads: one, unless a BLAS thread variable in the environment sets the count, as
`OPENBLAS_NUM_THREADS=2 make bench` does). With OpenBLAS's two threads both eig and the objective
slow down erratically (spinning workers; per-round ratios from 0.1 to 2.6 at N = 100 even on an
idle 2-core machine), so compare two-thread tables only with care.

    make bench        # or: .venv/bin/python -m pytest tests/benchmarks -m benchmark --benchmark-enable
"""
import importlib.util
import time
import warnings
from pathlib import Path

import autograd.numpy as anp
import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from _speed_table import NOTES, RATIOS
from tcnet import Loss, Term
from tcnet.plugins import registry
from tcnet.threads import auto_threads
from tcnet.spec import RunSpec, build_dynamics, build_objective
from tcnet_plugins.preparatory.cli import recipe, run_spec

SIZES = (100, 300, 500, 1000)
COMPOSITION_SIZES = (300, 500)
ROUNDS = {100: 30, 300: 10, 500: 5, 1000: 3}
PATHS = ("default", "eig", "fused", "lyapunov", "composition", "torch")


class SpectralMargin(Loss):
    """A user's term of the eigenvalues: sum_i max(Re lambda_i - 0.9, 0)^2 (keep a margin below
    the stability line), reading `state.lam` as docs/PLUGINS.md shows."""

    name = "spectral_margin"

    def __call__(self, state):
        return anp.sum(anp.maximum(anp.real(state.lam) - 0.9, 0.0) ** 2)


@pytest.fixture(autouse=True)
def run_threads():
    """The BLAS thread count of `tcnet.run` (its default, auto_threads) around every measurement."""
    with threadpool_limits(auto_threads(), user_api="blas"):
        yield


def objective(N, backend=None):
    """(objective, theta) as `tcnet train -N N` builds them (seed 0), optionally naming a backend."""
    dynamics = {"name": "linear_decay", "seed": 0, "N": N, "n_frac": 0.1, "tau": 0.01,
                "normalization": "raw_weights", "init": "legacy"}
    if backend is not None:
        dynamics["backend"] = backend
    spec = RunSpec.from_dict(run_spec(dynamics, alpha=1e5, beta=0.01, optimizer=recipe()))
    plugins = registry()
    net = build_dynamics(spec.dynamics, plugins)
    return build_objective(net, spec.loss, plugins), net.vector()


def composition(N):
    obj, theta = objective(N)
    return type(obj)(obj.dynamics, [*obj.terms, Term(SpectralMargin(), 1.0)]), theta


def torch_value_and_grad(N):
    """The loss in PyTorch, value and gradient w.r.t. J (None without torch)."""
    try:
        import torch
    except ImportError:
        return None
    path = Path(__file__).parents[2] / "benchmarks" / "compare_torch.py"
    spec = importlib.util.spec_from_file_location("compare_torch", path)
    compare = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(compare)
    obj, theta = objective(N)
    state = obj.dynamics.state(theta)
    J = torch.tensor(np.array(state.J), dtype=torch.float64, requires_grad=True)
    w = torch.tensor(obj.dynamics.arrays["w"])

    def value_and_grad():
        J.grad = None
        value = compare.torch_loss(torch, J, w)
        value.backward()
        return value.item(), J.grad

    return value_and_grad


def candidate(path, N):
    """(function timed, J) for a path at size N; None where the path is not measured."""
    if path == "composition" and N not in COMPOSITION_SIZES:
        return None
    if path == "torch":
        f = torch_value_and_grad(N)
        return None if f is None else (f, np.array(objective(N)[0].dynamics.state().J))
    obj, theta = composition(N) if path == "composition" else objective(N, None if path == "default" else path)
    return (lambda: obj.evaluate(theta)), np.array(obj.dynamics.state(theta).J)


@pytest.mark.benchmark
@pytest.mark.parametrize("N", SIZES)
@pytest.mark.parametrize("path", PATHS)
def test_value_and_gradient_vs_eig(benchmark, path, N):
    found = candidate(path, N)
    if found is None:
        pytest.skip(f"{path} is not measured at N = {N}" + (" (torch is not installed)" if path == "torch" else ""))
    f, J = found
    rounds = ROUNDS[N] if not (path == "eig" and N >= 1000) else 2
    eig_times = []

    def eig_first():
        t0 = time.perf_counter()
        np.linalg.eig(J)
        eig_times.append(time.perf_counter() - t0)
        return (), {}

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", np.exceptions.ComplexWarning)
        benchmark.pedantic(f, setup=eig_first, rounds=rounds, warmup_rounds=1)
    paired = np.array(benchmark.stats.stats.data) / np.array(eig_times[-rounds:])  # setup ran before each round
    ratio_min, ratio_median = float(paired.min()), float(np.median(paired))
    benchmark.extra_info.update(N=N, eig_min_s=min(eig_times), eig_median_s=float(np.median(eig_times)),
                                ratio_min=ratio_min, ratio_median=ratio_median)
    RATIOS.append((path, N, ratio_min, ratio_median))


@pytest.mark.benchmark
@pytest.mark.slow
def test_cost_exponent(benchmark):
    """Fit t ~ N^p from N = 100 to 2000 for the default value+gradient and for numpy.linalg.eig,
    timed interleaved (eig, default, eig, default, ...) at each N."""
    sizes = (100, 200, 400, 700, 1000, 1400, 2000)
    seconds = {"numpy.linalg.eig": [], "default": []}

    def measure():
        for N in sizes:
            obj, theta = objective(N)
            J = np.array(obj.dynamics.state(theta).J)
            obj.evaluate(theta)
            times = {k: [] for k in seconds}
            for _ in range(5 if N <= 400 else 2):
                for what, f in (("numpy.linalg.eig", lambda: np.linalg.eig(J)), ("default", lambda: obj.evaluate(theta))):
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
    for N, e, f in zip(sizes, seconds["numpy.linalg.eig"], seconds["default"]):
        NOTES.append(f"default value+grad / eig at N = {N} (fit run): {f / e:.2f}")
