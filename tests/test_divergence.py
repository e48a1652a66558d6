"""A run that diverges ends with status "diverged" (tcnet.optim.Monitor.check_bounds), in every
optimizer (the Iterative loop, L-BFGS, staged), in the store, in `show` and `compare`, and `tcnet
train` says so and exits 1.

Before: `tcnet train -l 1e300` left U and V near 1e300 with status converged (the loss, invariant
to their scale, stayed finite), and the penalty method above its stability bound climbed to 1e152
without a word."""
import warnings

import numpy as np
import pytest

from tcnet import store
from tcnet.cli import main
from tcnet.optim import FINITE_BOUND, GROWTH_BOUND, LBFGS, SGD, Adam, Monitor, StabilityWarning, Staged
from tcnet.loss import Objective
from tcnet.spec import build_objective


def test_train_with_a_huge_learning_rate_diverges(tmp_path, capsys):
    out = tmp_path / "l.h5"
    assert main(["train", "-N", "30", "-l", "1e300", "-A", "5", "-L", "5", "-f", str(out), "--no-progress"]) == 1
    captured = capsys.readouterr()
    assert ", diverged, 0 steps," in captured.out
    run_id, = store.list_runs(out)
    assert captured.err == (f"tcnet train: run {run_id} diverged: largest |parameter| 1e+300 > 1e+10 at step 1 "
                            f"({GROWTH_BOUND:g} x its 1 at the start, at most {FINITE_BOUND:g})\n")
    rec = store.read_run(out, run_id)
    assert rec.status == "diverged" and rec.attrs["optimizer_status"] == "diverged"
    # the final network is the last iterate within the bounds: here the start
    for k in ("U", "V"):
        assert np.array_equal(rec.final.arrays[k], rec.initial.arrays[k])
    assert main(["show", str(out)]) == 0
    assert f"{run_id}  status=diverged  steps=1" in capsys.readouterr().out
    assert main(["compare", "--csv", str(out)]) == 0
    assert capsys.readouterr().out.splitlines()[1].split(",")[:3] == [str(out), run_id, "diverged"]


def _toy_penalty(mu, steps=3000):
    import tcnet
    from tcnet_plugins.constraints.toy_gaussian import slides_methods, toy_spec
    method = {**slides_methods()["penalty"], "mu": mu, "mu_max": mu, "steps": steps}
    return tcnet.run(toy_spec(method), progress=False)


def _penalty_radius(mu, lr=0.01, h=1e-4):
    """Spectral radius of the gradient-descent map x <- x - lr grad(f + mu c) linearised at the
    minimizer of f + mu c (scipy minimizes it; the Hessian by central differences of the
    gradient, from the toy's closed-form f and c)."""
    import scipy.optimize
    from tcnet_plugins.constraints.toy_gaussian import SLIDES_C, SLIDES_U
    C, u = np.array(SLIDES_C), np.array(SLIDES_U)

    def grad(x):
        d = x - u
        return 2 * np.exp(-d @ C @ d) * (C @ d) + mu * 2 * (x[1] - 3.0) * np.array([0.0, 1.0])

    x = scipy.optimize.minimize(lambda x: -np.exp(-(x - u) @ C @ (x - u)) + mu * (x[1] - 3) ** 2, [0.0, 3.0],
                                jac=grad, tol=1e-12).x
    H = np.column_stack([(grad(x + h * e) - grad(x - h * e)) / (2 * h) for e in np.eye(2)])
    return max(abs(np.linalg.eigvals(np.eye(2) - lr * H)))


@pytest.mark.parametrize("mu, diverges", [(90.0, False), (110.0, True)])
def test_penalty_above_its_stability_bound_diverges(mu, diverges):
    """Just below and above the bound (the radius of the linearised map crosses 1 near mu = 100):
    the run stays near the optimum, or ends diverged long before its 3000 steps."""
    assert (_penalty_radius(mu) > 1) == diverges
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StabilityWarning)  # tested below
        res = _toy_penalty(mu)
    if diverges:
        assert res.result.status == "diverged" and res.result.steps < 500
        assert " at step " in res.result.message
        assert max(abs(s.loss) for s in res.history.steps) <= GROWTH_BOUND * max(abs(res.history.steps[0].loss), 1)
    else:
        assert res.result.status == "max_steps"
        assert abs(res.final.arrays["x"][0, 1] - 3.0) < 0.01


@pytest.fixture
def unbounded(point_plugins):
    """0.5 x^T H x with H = -I: no minimum, every descent method runs off to infinity."""
    dyn = point_plugins.get("dynamics", "point").create(seed=0)
    return build_objective(dyn, [{"name": "quadratic", "c": [0.0] * 3, "h": [-1.0] * 3}], point_plugins)


@pytest.mark.parametrize("optimizer", [SGD(lr=0.5, steps=1000), LBFGS(max_iter=1000),
                                       Staged(Adam(steps=5, lr=0.1), LBFGS(max_iter=1000))],
                         ids=["iterative", "lbfgs", "staged"])
def test_every_optimizer_stops_a_divergent_run(unbounded, optimizer):
    steps = []
    x0 = np.ones(3)
    result = optimizer.minimize(unbounded, x0, Monitor(steps.append))
    assert result.status == "diverged" and f" at step {len(steps)} (" in result.message
    assert np.array_equal(result.x, steps[-1].x)  # the last iterate within the bounds
    assert all(np.max(np.abs(s.x)) <= GROWTH_BOUND and abs(s.loss) <= GROWTH_BOUND * 1.5 for s in steps)
    assert len(steps) < 200


def test_a_bounded_run_is_not_diverged(point_plugins):
    """A run that moves far but converges (from 0 to its minimum near 1e8) is not stopped."""
    dyn = point_plugins.get("dynamics", "point").create(seed=0)
    c = [1e8, -1e8, 0.5e8]
    objective = build_objective(dyn, [{"name": "quadratic", "c": c, "h": [1.0, 1.0, 1.0]}], point_plugins)
    result = LBFGS().minimize(objective, np.zeros(3))
    assert result.status == "converged"
    np.testing.assert_allclose(result.x, c, rtol=1e-8)


# --- step sizes beyond a known stability bound warn (StabilityWarning), below it they do not -------
def _warnings(call):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        call()
    return [str(w.message) for w in caught if issubclass(w.category, StabilityWarning)]


def _heavy_ball_radius(lr, h, momentum):
    """Spectral radius of the heavy-ball map (x, v) <- (x + v', v' = momentum v - lr H x) for H = diag(h)."""
    n = len(h)
    H, I = np.diag(h), np.eye(n)
    A = np.block([[I - lr * H, momentum * I], [-lr * H, momentum * I]])
    return max(abs(np.linalg.eigvals(A)))


@pytest.mark.parametrize("momentum", [0.0, 0.5])
def test_sgd_warns_above_its_stability_bound_only(point_plugins, momentum):
    import scipy.optimize
    h = [1.0, 4.0, 0.25]
    dyn = point_plugins.get("dynamics", "point").create(seed=0)
    objective = build_objective(dyn, [{"name": "quadratic", "h": h}], point_plugins)
    critical = scipy.optimize.brentq(lambda lr: _heavy_ball_radius(lr, h, momentum) - 1, 0.1, 2.0, xtol=1e-12)
    for lr, expected in ((0.95 * critical, 0), (1.05 * critical, 1)):
        caught = _warnings(lambda: SGD(lr=lr, momentum=momentum, steps=3).minimize(objective, np.ones(3)))
        assert len(caught) == expected, (lr, critical, caught)
    assert caught[0].startswith(f"sgd: lr * (largest curvature of the loss at the start) = {1.05 * critical:g} * 4 =")
    assert f"lr below {critical:.4g} is stable there" in caught[0]


def test_the_stability_check_has_a_budget_and_can_be_skipped(point_plugins, monkeypatch):
    """stability_check = k allows at most k Hessian-vector products (2 evaluations each); 0 skips
    the check: no warning even far above the bound, and no evaluation beyond the run's own."""
    dyn = point_plugins.get("dynamics", "point").create(seed=0)
    objective = build_objective(dyn, [{"name": "quadratic", "h": [1.0, 4.0, 0.25]}], point_plugins)
    calls, evaluate = [], Objective.evaluate
    monkeypatch.setattr(Objective, "evaluate", lambda self, *a, **k: calls.append(1) or evaluate(self, *a, **k))
    for budget, expected in ((0, 0), (1, None), (20, 1)):
        calls.clear()
        caught = _warnings(lambda: SGD(lr=1.0, steps=3, stability_check=budget).minimize(objective, np.ones(3)))
        check = len(calls) - 4  # the run's own: the start and 3 steps
        assert check == 0 if budget == 0 else 2 <= check <= 2 * budget
        if expected is not None:  # one product is a lower bound only, that may or may not warn
            assert len(caught) == expected  # lr 1 * curvature 4 > 2


@pytest.mark.parametrize("mu", [90.0, 110.0])
def test_penalty_warns_above_its_stability_bound_only(mu):
    caught = _warnings(lambda: _toy_penalty(mu, steps=2))
    assert len(caught) == (_penalty_radius(mu) > 1)
    if caught:
        assert caught[0].startswith("penalty: lr * (largest curvature of f + mu_max c at the start, mu_max = 110) =")


STEPPING_COMMAND = '''
import tcnet
from tcnet_plugins.constraints.toy_gaussian import slides_methods, toy_spec


def penalty(args):
    method = {**slides_methods()["penalty"], "mu": 110.0, "mu_max": 110.0, "steps": 2}
    for _ in range(2):  # every run warns, not only the first
        tcnet.run(toy_spec(method), progress=False)
    return 0


@tcnet.hookimpl
def tcnet_commands(subparsers):
    subparsers.add_parser("penalty").set_defaults(handler=penalty)
'''


OVERFLOWING_COMMAND = '''
import numpy as np
import tcnet


def overflow(args):
    np.exp(np.array([1e3]))
    return 0


@tcnet.hookimpl
def tcnet_commands(subparsers):
    subparsers.add_parser("overflow").set_defaults(handler=overflow)
'''


def test_the_cli_shows_any_other_warning_as_one_line_with_where_it_came_from(tmp_path, capsys):
    """Before: numpy's two raw lines (FILE:LINE: RuntimeWarning: ..., then the source line)."""
    plugin = tmp_path / "overflowing.py"
    plugin.write_text(OVERFLOWING_COMMAND)
    assert main(["--plugin", str(plugin), "overflow"]) == 0
    assert capsys.readouterr().err == (f"tcnet overflow: warning: RuntimeWarning: overflow encountered in exp "
                                       f"({plugin}:7)\n")


def test_the_cli_shows_a_stability_warning_as_one_line(tmp_path, capsys):
    plugin = tmp_path / "stepping.py"
    plugin.write_text(STEPPING_COMMAND)
    assert main(["--plugin", str(plugin), "penalty"]) == 0
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2 and lines[0] == lines[1]
    assert lines[0].startswith("tcnet penalty: warning: penalty: lr * (largest curvature of f + mu_max c at the start")
