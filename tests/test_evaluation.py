"""An evaluation returns everything as outputs: per-term values, side results (aux) and the run-time
inputs it was given. Nothing is written onto the objective while autograd traces, so evaluations of
one objective from two threads, or one nested inside another, each get their own numbers."""
import threading

import autograd.numpy as anp
import numpy as np
import pytest

from tcnet import ConfigError, Loss, Objective, Term

C = np.array([1.0, -2.0, 0.5])


class Shifted(Loss):
    """0.5 |x - shift|^2 with `shift` a run-time input; aux: the signed residual x - shift."""

    name = "shifted"
    inputs = ("shift",)

    def __call__(self, state, shift):
        r = state.x - shift
        return 0.5 * anp.sum(r * r), {"residual": r}


class Gate(Loss):
    """sum(x), after waiting at `barrier` (so that two traces are inside the objective at once)
    or after running `inside` (an evaluation nested in this one)."""

    name = "gate"

    def __init__(self, barrier=None, inside=None):
        super().__init__()
        self.barrier, self.inside = barrier, inside

    def __call__(self, state):
        if self.barrier is not None:
            self.barrier.wait(timeout=10)
        if self.inside is not None:
            self.inside()
        return anp.sum(state.x)


def closed_form(x, shift):
    """Value, gradient and term values of quadratic + 2 shifted + gate at x (test plugin's quadratic)."""
    h = np.array([1.0, 4.0, 0.25])
    quadratic, shifted, gate = 0.5 * np.sum(h * (x - C) ** 2), 0.5 * np.sum((x - shift) ** 2), np.sum(x)
    grad = h * (x - C) + 2 * (x - shift) + 1.0
    return quadratic + 2 * shifted + gate, grad, {"quadratic": quadratic, "shifted": shifted, "gate": gate}


def objective_with(point_plugins, gate):
    dyn = point_plugins.get("dynamics", "point").create(seed=0)
    return Objective(dyn, [Term(point_plugins.get("loss", "quadratic")()), Term(Shifted(), 2.0), Term(gate)])


def check(ev, x, shift):
    value, grad, terms = closed_form(x, shift)
    assert ev.value == pytest.approx(value, rel=1e-14)
    np.testing.assert_allclose(ev.grad, grad, rtol=1e-14)
    assert ev.terms == pytest.approx(terms, rel=1e-14)
    np.testing.assert_allclose(ev.aux["shifted"]["residual"], x - shift, rtol=0, atol=1e-15)
    assert set(ev.aux) == {"shifted"}  # terms that return no side results have no entry


def test_inputs_and_aux_with_and_without_gradient(point_plugins):
    objective = objective_with(point_plugins, Gate())
    x, shift = np.array([0.3, 1.2, -0.7]), np.array([1.0, 0.0, 2.0])
    assert objective.inputs == ("shift",)
    check(objective.evaluate(x, {"shift": shift}), x, shift)
    plain = objective.evaluate(x, {"shift": shift}, gradient=False)
    assert plain.grad.size == 0 and plain.value == pytest.approx(closed_form(x, shift)[0], rel=1e-14)
    assert objective(x, {"shift": shift}) == pytest.approx(closed_form(x, shift)[0], rel=1e-14)
    with pytest.raises(ConfigError, match="input\\(s\\) shift required by its terms are missing"):
        objective.evaluate(x)


def test_two_threads_inside_one_objective_get_their_own_terms(point_plugins):
    barrier = threading.Barrier(2)
    objective = objective_with(point_plugins, Gate(barrier=barrier))
    points = {0: (np.array([0.3, 1.2, -0.7]), np.zeros(3)), 1: (np.array([-1.0, 2.5, 4.0]), np.ones(3))}
    results, errors = {}, []

    def work(k):
        try:
            x, shift = points[k]
            results[k] = objective.evaluate(x, {"shift": shift})
        except Exception as err:  # reported below; a thread's exception would otherwise be lost
            errors.append(err)

    threads = [threading.Thread(target=work, args=(k,)) for k in points]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and not barrier.broken  # both traces were inside the objective at once
    for k, (x, shift) in points.items():
        check(results[k], x, shift)


def test_an_evaluation_nested_inside_another_leaves_both_right(point_plugins):
    inner = {}
    x_in, s_in = np.array([2.0, -1.0, 0.5]), np.array([0.5, 0.5, 0.5])
    gate = Gate()
    objective = objective_with(point_plugins, gate)

    def nested():
        if not inner:  # one level deep: the nested evaluation runs the gate without nesting again
            inner["ev"] = None
            inner["ev"] = objective.evaluate(x_in, {"shift": s_in})

    gate.inside = nested
    x, shift = np.array([0.3, 1.2, -0.7]), np.array([1.0, 0.0, 2.0])
    outer = objective.evaluate(x, {"shift": shift})
    check(outer, x, shift)
    check(inner["ev"], x_in, s_in)
