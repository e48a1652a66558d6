"""What returning side results as outputs costs: Objective.evaluate (per-term values and aux through
one make_vjp pass, issue 13 item 2) against a bare autograd.value_and_grad of the same total (what
the objective did before, with per-term values written onto itself), on the toy Gaussian where the
framework's overhead is largest relative to the arithmetic. Interleaved: the baseline runs right
before each timed round (pedantic's untimed setup), so load on a shared machine hits both alike.
Nothing asserts on time; the ratio is printed with the other speed ratios.

    make bench        # or: .venv/bin/python -m pytest tests/benchmarks -m benchmark --benchmark-enable
"""
import time

import numpy as np
import pytest
from autograd import value_and_grad

from _speed_table import NOTES
from tcnet.plugins import registry
from tcnet.spec import build_dynamics, build_objective
from tcnet_plugins.constraints.toy_gaussian import toy_spec


@pytest.mark.benchmark
def test_evaluate_with_terms_and_aux_vs_bare_value_and_grad(benchmark):
    spec = toy_spec({"name": "sgd"}, start=np.random.default_rng(0).normal(size=(64, 2)).tolist())
    plugins = registry()
    objective = build_objective(build_dynamics(spec["dynamics"], plugins), spec["loss"], plugins)
    theta = objective.dynamics.vector()

    def total(th):
        state = objective.dynamics.state(th)
        return sum(t.weight * t.loss(state) for t in objective.terms)

    bare = value_and_grad(total)
    assert np.allclose(bare(theta)[1], objective.evaluate(theta).grad, rtol=1e-14, atol=0)
    base = []

    def bare_first():
        t0 = time.perf_counter()
        bare(theta)
        base.append(time.perf_counter() - t0)
        return (theta,), {}

    benchmark.pedantic(objective.evaluate, setup=bare_first, rounds=300, warmup_rounds=5)
    ratio_min = benchmark.stats.stats.min / min(base)
    ratio_median = benchmark.stats.stats.median / float(np.median(base))
    benchmark.extra_info.update(ratio_min=ratio_min, ratio_median=ratio_median)
    NOTES.append(f"Objective.evaluate (terms + aux) / bare value_and_grad, toy with 64 points: "
                 f"{ratio_min:.2f} (min), {ratio_median:.2f} (median)")
