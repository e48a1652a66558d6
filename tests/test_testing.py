"""tcnet.testing.check_gradient: it catches a wrong vector-Jacobian product in a plugin and
passes on every built-in loss."""
import textwrap

import numpy as np
import pytest
from autograd.tracer import getval

from tcnet import Loss

from tcnet.loss import Objective, Term
from tcnet.plugins import Registry, registry
from tcnet.task import Task
from tcnet.testing import check_gradient
from tcnet.validate import ConfigError

WRONG_VJP = '''
"""A loss through a primitive whose VJP is off by a factor 2 (the kind of mistake the check is for)."""
import autograd.numpy as anp
from autograd.extend import defvjp, primitive

from tcnet import Loss, hookimpl


@primitive
def cube_sum(x):
    return anp.sum(x ** 3)


defvjp(cube_sum, lambda ans, x: lambda g: g * 6 * x ** 2)  # d/dx sum x^3 = 3 x^2, not 6 x^2


class Cubic(Loss):
    name = "cubic"

    def __call__(self, state):
        return cube_sum(state.U) + anp.sum(state.V ** 2)


@hookimpl
def tcnet_losses():
    return [Cubic]
'''


@pytest.fixture(scope="module")
def wrong_plugin(tmp_path_factory):
    path = tmp_path_factory.mktemp("plugin") / "cubic.py"
    path.write_text(WRONG_VJP)
    return Registry(files=[path])


def test_a_wrong_vjp_is_caught_on_its_array_only(wrong_plugin):
    report = check_gradient({"dynamics": {"name": "linear_decay", "N": 10, "n_frac": 0.2},
                             "loss": [{"name": "cubic"}]}, plugins=wrong_plugin, points=2)
    assert not report.ok
    assert {(r.term, r.array) for r in report.failures} == {("cubic", "U")}
    for r in report.failures:  # the analytic derivative is twice the true one
        assert r.analytic == pytest.approx(2 * r.numeric, rel=1e-5)
    assert "WRONG" in str(report) and str(report).startswith("gradient check: 2 of 4 agree")


def test_a_numpy_call_that_drops_the_gradient_is_caught():
    """A loss that unboxes a traced array (np.asarray does, getval says so) is a constant to autograd: autograd's gradient is 0, the differences not."""
    class Frozen(Loss):
        name = "frozen"

        def __call__(self, state):
            return np.sum(getval(state.J) ** 2) + 0 * state.J[0, 0]

    dyn = registry().get("dynamics", "linear_decay").create(seed=0, N=8, n_frac=0.25)
    report = check_gradient(Objective(dyn, [Term(Frozen())]), points=1)
    assert {r.array for r in report.failures} == {"U", "V"}
    assert all(r.analytic == 0 for r in report.failures)


@pytest.fixture(scope="module")
def task_file(tmp_path_factory):
    rng = np.random.default_rng(0)
    task = Task(np.linspace(0, 0.03, 9), rng.normal(size=(2, 9, 2)), rng.normal(size=(2, 9, 2)))
    path = tmp_path_factory.mktemp("task") / "task.npz"
    task.save(path)
    return path


def builtin_specs(task_file):
    """A small network for every built-in loss (the losses a dynamics of tcnet's own plugins reads)."""
    linear = {"name": "linear_decay", "N": 8, "n_frac": 0.25}
    rate = {"name": "rate_network", "N": 4, "task": str(task_file), "dt": 0.005, "trainable": ["J", "B", "W", "x0"]}
    return {
        "decay": (linear, {}), "stability": (linear, {}), "smoothness": (linear, {}),
        "readout": (rate, {}), "endpoint": (rate, {}), "energy": (rate, {}),
        "homeostatic": ({"name": "ei_rate", "preset": "paradoxical"}, {}),
        "set_points": ({"name": "ei_circuit", "preset": "del_molino_high"}, {}),
        "toy_objective": ({"name": "toy_gaussian"}, {}), "toy_constraint": ({"name": "toy_gaussian"}, {}),
        "equality": ({"name": "toy_gaussian"}, {"quantity": "x", "index": [1], "target": 3.0}),
    }


def test_every_builtin_loss_passes(task_file):
    specs = builtin_specs(task_file)
    builtin = {e.name for e in registry().all() if e.kind == "loss"}
    assert builtin - {"simpl_nll"} == set(specs), "a built-in loss without a gradient check"
    for name, (dynamics, settings) in specs.items():
        report = check_gradient({"dynamics": dynamics, "loss": [{"name": name, **settings}]}, points=2)
        assert report.ok, f"{name}\n{report}"
        assert len(report.rows) == 2 * len(registry().get("dynamics", dynamics["name"]).create(
            **{k: v for k, v in dynamics.items() if k != "name"}).trainable)


def test_a_loss_without_gradients_is_refused_in_one_line():
    """SIMPL's likelihood is fitted by EM: its state says so rather than returning a wrong gradient."""
    with pytest.raises(ConfigError, match="^simpl: the SIMPL losses are not differentiable"):
        check_gradient({"dynamics": {"name": "simpl_latent", "generator": {"n_cells": 5, "duration": 20.0}},
                        "loss": [{"name": "simpl_nll"}]})
