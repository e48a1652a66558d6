"""Optimizers, the step trace, resuming and the non-finite guard, on closed-form problems."""
import numpy as np
import pytest

from tcnet import Checkpoint, ConfigError, Monitor, Objective, Term
from tcnet.optim import LBFGS, SGD, Adam, Staged
from tcnet.spec import build_objective, build_optimizer

C = np.array([1.0, -2.0, 0.5])
H = np.array([1.0, 4.0, 0.25])


@pytest.fixture
def problem(point_plugins):
    dyn = point_plugins.get("dynamics", "point").create(seed=1)
    return build_objective(dyn, [{"name": "quadratic"}], point_plugins), dyn.vector()


def run(opt, objective, start):
    steps = []
    result = opt.minimize(objective, start, Monitor(steps.append))
    return result, steps


def test_objective_value_terms_and_gradient_closed_form(point_plugins):
    dyn = point_plugins.get("dynamics", "point").create(seed=3)
    objective = build_objective(dyn, [{"name": "quadratic"}, {"name": "logbarrier", "weight": 0.0}], point_plugins)
    x = np.array([2.0, 1.0, 3.0])
    ev = objective.evaluate(x)
    assert ev.terms["quadratic"] == pytest.approx(0.5 * np.sum(H * (x - C) ** 2), rel=1e-15)
    assert ev.terms["logbarrier"] == pytest.approx(-np.sum(np.log(x)), rel=1e-15)
    np.testing.assert_allclose(ev.grad, H * (x - C), rtol=1e-15)


def test_sgd_matches_closed_form_iteration(problem):
    objective, x0 = problem
    result, steps = run(SGD(lr=0.1, steps=20), objective, x0)
    # x_k - c = (1 - lr h)^k (x_0 - c) for a diagonal quadratic
    np.testing.assert_allclose(result.x - C, (1 - 0.1 * H) ** 20 * (x0 - C), rtol=1e-12)
    assert [s.step for s in steps] == list(range(21)) and result.status == "max_steps"


def test_adam_first_step_closed_form(problem):
    objective, x0 = problem
    g = H * (x0 - C)
    result, _ = run(Adam(lr=0.01, steps=1), objective, x0)
    # t = 1: m = (1-b1) g, v = (1-b2) g^2, so the step is lr g / (|g| + eps / sqrt(1 - b2))
    expected = x0 - 0.01 * g / (np.abs(g) + 1e-7 / np.sqrt(1 - 0.999))
    np.testing.assert_allclose(result.x, expected, rtol=1e-14)


def test_lbfgs_reaches_minimum_and_reports_every_iteration(problem):
    objective, x0 = problem
    result, steps = run(LBFGS(gtol=1e-10, ftol=0.0), objective, x0)
    assert result.status == "converged"
    np.testing.assert_allclose(result.x, C, atol=1e-8)
    assert [s.step for s in steps] == list(range(len(steps)))
    assert result.steps == len(steps) - 1
    for s in steps:  # each reported loss is the objective at the reported point
        assert s.loss == pytest.approx(objective.evaluate(s.x).value, rel=1e-14)


@pytest.mark.parametrize("optimizer", [LBFGS(gtol=1e-10, ftol=0.0), Staged(Adam(steps=5), LBFGS(gtol=1e-10, ftol=0.0))],
                         ids=["lbfgs", "adam-then-lbfgs"])
def test_no_point_is_evaluated_twice(problem, monkeypatch, optimizer):
    """L-BFGS's start is evaluated once (for its report and scipy's first call), and so is every
    point of the line searches (the callback's iterate is one of them); a stage's start once, where
    the stage before evaluated it last (Adam's last iterate)."""
    objective, x0 = problem
    points = []
    evaluate = type(objective).evaluate
    monkeypatch.setattr(type(objective), "evaluate", lambda self, x, *a: points.append(x.tobytes()) or evaluate(self, x, *a))
    result, _ = run(optimizer, objective, x0)
    assert result.status == "converged" and len(points) > 3
    assert len(set(points)) == len(points) == result.evaluations


def test_staged_numbers_steps_across_stages(problem):
    objective, x0 = problem
    result, steps = run(Staged(Adam(steps=5), LBFGS(gtol=1e-10, ftol=0.0)), objective, x0)
    assert [s.step for s in steps] == list(range(len(steps)))
    assert [s.stage for s in steps[:6]] == [0] * 6 and all(s.stage == 1 for s in steps[6:])
    np.testing.assert_allclose(result.x, C, atol=1e-8)
    assert "stage 0 (adam): max_steps" in result.message


@pytest.mark.parametrize("opt", [Adam(steps=12, lr=0.05), SGD(steps=12, lr=0.05, momentum=0.5)])
def test_resume_first_order_is_bitwise(problem, opt):
    objective, x0 = problem
    full, steps = run(opt, objective, x0)
    ck = steps[5]
    resumed, later = run(opt, objective, Checkpoint.at(ck))
    assert np.array_equal(resumed.x, full.x)
    assert [s.step for s in later] == list(range(6, 13))
    assert [s.loss for s in later] == [s.loss for s in steps[6:]]


def test_resume_staged_in_second_stage(problem):
    objective, x0 = problem
    opt = Staged(Adam(steps=4), LBFGS(gtol=1e-10, ftol=0.0))
    full, steps = run(opt, objective, x0)
    ck = steps[6]  # inside the L-BFGS stage
    resumed, later = run(opt, objective, Checkpoint.at(ck))
    assert ck.stage == 1 and all(s.stage == 1 for s in later) and later[0].step == 7
    assert later[0].evaluations > ck.evaluations  # the count goes on
    np.testing.assert_allclose(resumed.x, full.x, atol=1e-8)


def test_former_name_chain_still_builds_a_staged_optimizer(point_plugins):
    opt = build_optimizer({"name": "chain", "stages": [{"name": "adam", "steps": 2}]}, point_plugins)
    assert isinstance(opt, Staged) and opt.config["name"] == "staged"


def test_non_finite_guard_stops_with_last_finite_point(point_plugins):
    dyn = point_plugins.get("dynamics", "point").create(seed=0)
    terms = [{"name": "quadratic"}, {"name": "logbarrier", "weight": 1e-3}]
    objective = build_objective(dyn, terms, point_plugins)
    x0 = np.array([1.0, 1.0, 1.0])  # the quadratic pulls x2 to -2; SGD overshoots past 0 at step 1
    with np.errstate(invalid="ignore"):
        result, steps = run(SGD(lr=0.3, steps=10), objective, x0)
    assert result.status == "non-finite" and "logbarrier" in result.message
    assert all(np.isfinite(s.loss) for s in steps)
    assert np.array_equal(result.x, steps[-1].x)


def test_callback_can_stop(problem):
    objective, x0 = problem
    result = Adam(steps=100).minimize(objective, x0, Monitor(lambda s: s.step >= 3))
    assert result.status == "stopped" and result.steps == 3


@pytest.mark.parametrize(
    "cfg, message",
    [
        ({"name": "adam", "lr": 0}, "adam: lr must be in (0, inf], got 0"),
        ({"name": "sgd", "steps": -1}, "sgd: steps must be an integer in [0, inf], got -1"),
        ({"name": "adam", "learning_rate": 0.1}, "adam: unknown setting 'learning_rate'; accepted:"),
        ({"name": "lbfgs", "memory": 0}, "lbfgs: memory must be an integer in [1, inf], got 0"),
        ({"name": "staged", "stages": []}, "staged: stages must hold at least one optimizer"),
        ({"name": "staged", "stages": [{"steps": 3}]}, "each optimizer entry must be a table with a string 'name'"),
    ],
)
def test_bad_optimizer_settings(point_plugins, cfg, message):
    with pytest.raises(ConfigError) as err:
        build_optimizer(cfg, point_plugins)
    assert message in str(err.value)


def test_objective_rejects_duplicate_and_unknown_labels(point_plugins):
    dyn = point_plugins.get("dynamics", "point").create()
    q = point_plugins.get("loss", "quadratic")()
    with pytest.raises(ConfigError, match="repeated: quadratic"):
        Objective(dyn, [Term(q), Term(q, 2.0)])
    with pytest.raises(ConfigError, match="unknown term\\(s\\) nope; terms are quadratic"):
        Objective(dyn, [Term(q)]).restrict(["nope"])
