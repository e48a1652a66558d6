"""End-to-end: the published preparatory-network run (examples/reproduce_preparatory_notebook.py:
N = 500, seed 2, legacy init, beta = 0.01, 30 Adam steps then L-BFGS) per backend; reports the
number of objective evaluations and the wall time until the loss first reaches the published
final loss 0.64046 (to 1e-4 relative), and the final loss. Slow (minutes); never asserts on time.

    .venv/bin/python -m pytest tests/benchmarks/test_reproduction_speed.py -m benchmark --benchmark-enable -s
"""
import time

import pytest

from _speed_table import NOTES
from tcnet import Objective, run
from tcnet_plugins.preparatory.cli import recipe, run_spec

PUBLISHED = 0.64046  # TensorFlow implementation, beta = 0.01


@pytest.mark.benchmark
@pytest.mark.slow
@pytest.mark.parametrize("backend", ["eig", "fused", "lyapunov"])
def test_reproduction_run(benchmark, monkeypatch, backend):
    dynamics = {"name": "linear_decay", "seed": 2, "N": 500, "n_frac": 0.1, "tau": 0.01,
                "normalization": "raw_weights", "init": "legacy", "backend": backend}
    evaluations = []  # (seconds since start, loss) of every objective evaluation
    evaluate = Objective.evaluate

    def counted(self, theta):
        ev = evaluate(self, theta)
        evaluations.append((time.perf_counter() - t0, ev.value))
        return ev

    monkeypatch.setattr(Objective, "evaluate", counted)
    spec = run_spec(dynamics, alpha=1e5, beta=0.01, optimizer=recipe())
    t0 = time.perf_counter()
    result = benchmark.pedantic(run, args=(spec,), kwargs={"progress": False}, rounds=1, iterations=1)
    reached = next((i for i, (_, v) in enumerate(evaluations) if v <= PUBLISHED * (1 + 1e-4)), None)
    final = result.history.steps[-1].loss
    info = {"evaluations": len(evaluations), "final_loss": final, "seconds": evaluations[-1][0],
            "evaluations_to_published": None if reached is None else reached + 1,
            "seconds_to_published": None if reached is None else evaluations[reached][0]}
    benchmark.extra_info.update(info)
    to = ("not reached" if reached is None else
          f"reached after {reached + 1} evaluations, {evaluations[reached][0]:.1f} s")
    NOTES.append(f"reproduction N=500 beta=0.01 [{backend}]: final loss {final:.6f} (published {PUBLISHED}) "
                 f"{to}; total {len(evaluations)} evaluations, {evaluations[-1][0]:.1f} s")
