"""The ei_rate dynamics, the homeostatic loss and the learning-rule optimizers as plugins: config
validation, simulation, and learning runs through tcnet.run in QSS and in simulated trials."""
import json

import numpy as np
import pytest

import tcnet
from tcnet.plugins import registry

SPEC = {"dynamics": {"name": "ei_rate", "preset": "paradoxical"}, "loss": [{"name": "homeostatic"}]}


def dynamics(**config):
    return registry().get("dynamics", "ei_rate").create(**config)


def solve_up(W, p):
    W_EE, W_EI, W_IE, W_II = W
    A = np.array([[1 - p["g_E"] * W_EE, p["g_E"] * W_EI], [-p["g_I"] * W_IE, 1 + p["g_I"] * W_II]])
    b = np.array([p["g_E"] * (p["I_ext"] - p["Theta_E"]), -p["g_I"] * p["Theta_I"]])
    return np.linalg.solve(A, b)


def test_plugins_are_registered():
    reg = registry()
    assert reg.get("dynamics", "ei_rate").name == "ei_rate"
    assert reg.get("loss", "homeostatic").name == "homeostatic"
    for rule in ("exact", "small_weight", "up_state", "cross_homeostatic", "homeostatic"):
        assert reg.get("optimizer", rule).name == rule


def test_default_and_presets_rebuild_from_json_config():
    d = dynamics()
    assert d.p["g_E"] == 1.0 and d.p["I_ext"] == 0.0
    np.testing.assert_array_equal(d.arrays["W"], [5, 2, 10, 2])
    n = dynamics(preset="non_paradoxical", tau_E=20.0)
    assert n.p["g_E"] == 0.5 and n.p["I_ext"] == 8.0 and n.p["tau_E"] == 20.0
    rebuilt = type(n)(n.arrays, json.loads(json.dumps(n.config)), n.seed)
    assert rebuilt.p == n.p


@pytest.mark.parametrize("config,word", [
    ({"tau_E": 0.0}, "tau_E"), ({"tau_I": -1.0}, "tau_I"), ({"g_E": -0.5}, "g_E"), ({"g_I": 0.0}, "g_I"),
    ({"E_set": 0.0}, "E_set"), ({"I_set": -3.0}, "I_set"), ({"preset": "other"}, "preset"),
    ({"W": [1.0, -0.1, 1.0, 1.0]}, "W"), ({"W": [1.0, 2.0]}, "W"), ({"Theta_E": float("nan")}, "Theta_E"),
    ({"gain": 1.0}, "gain"),
])
def test_invalid_parameters_raise_config_error(config, word):
    with pytest.raises(tcnet.ConfigError, match=word):
        dynamics(**config)


def test_invalid_loss_and_rule_settings_raise_config_error():
    with pytest.raises(tcnet.ConfigError, match="E_set"):
        registry().get("loss", "homeostatic")(E_set=-1.0)
    with pytest.raises(tcnet.ConfigError, match="mode"):
        registry().get("optimizer", "exact")(mode="fast")
    with pytest.raises(tcnet.ConfigError, match="lr"):
        registry().get("optimizer", "cross_homeostatic")(lr=0.0)



def test_rule_needs_the_homeostatic_term():
    from tcnet import Loss, Objective, Term

    class Zero(Loss):
        name = "zero"

        def __call__(self, state):
            return 0.0 * state.E

    objective = Objective(dynamics(), [Term(Zero())])
    with pytest.raises(tcnet.ConfigError, match="homeostatic"):
        registry().get("optimizer", "exact")(steps=1).minimize(objective, dynamics().vector())


def test_simulate_reaches_the_closed_form_up_state_and_summary():
    d = dynamics()
    t = np.linspace(0, 1000, 11)
    x0 = np.zeros((3, 2))
    r = d.simulate(x0, t, kick=10.0, kick_duration=10.0)
    assert r.shape == (11, 3, 2)
    np.testing.assert_allclose(r[-1], np.tile(solve_up(d.arrays["W"], d.p), (3, 1)), rtol=1e-6)
    # without the kick the paradoxical network stays at rest (bistable: Theta_E > I_ext)
    np.testing.assert_allclose(d.simulate(np.zeros(2), t)[-1], [0, 0], atol=1e-12)
    s = d.summary()
    np.testing.assert_allclose([s["E_up"], s["I_up"]], solve_up(d.arrays["W"], d.p), rtol=1e-12)
    assert s["stable"] == 1.0 and s["paradoxical"] == 1.0
    np.testing.assert_allclose([s["W_EI_set"], s["W_II_set"]], [15.2 / 14, 21.5 / 14], rtol=1e-12)
    x = d.sample_initial(5, seed=1)
    assert x.shape == (5, 2) and np.all(x >= 0) and np.all(x <= [10, 28])


def test_homeostatic_loss_and_state():
    d = dynamics()
    E, I = solve_up(d.arrays["W"], d.p)
    loss = registry().get("loss", "homeostatic")()
    np.testing.assert_allclose(loss(d.state()), 0.5 * (E - 5) ** 2 + 0.5 * (I - 14) ** 2, rtol=1e-12)
    other = registry().get("loss", "homeostatic")(E_set=4.0, I_set=10.0)
    np.testing.assert_allclose(other(d.state()), 0.5 * (E - 4) ** 2 + 0.5 * (I - 10) ** 2, rtol=1e-12)


def check_reached(res, mode):
    """Final rates (independent linear solve) within 1 % of (5, 14), stable Up state (eigenvalues)."""
    W = res.result.x
    d = res.final
    assert res.result.status == "converged"
    E, I = solve_up(W, d.p)
    assert abs(E - 5) <= 0.05 and abs(I - 14) <= 0.14
    W_EE, W_EI, W_IE, W_II = W
    J = np.array([[(W_EE - 1) / 10, -W_EI / 10], [4 * W_IE / 2, -(1 + 4 * W_II) / 2]])
    assert np.all(np.linalg.eigvals(J).real < 0)
    last = res.history.steps[-1]
    assert last.extra["stable"] == 1.0
    assert abs(last.extra["E"] - 5) <= 0.05 and abs(last.extra["I"] - 14) <= 0.14
    # the history holds the rates, weights, loss and stability of every step
    assert [s.step for s in res.history.steps] == list(range(res.result.steps + 1))
    assert all({"E", "I", "stable", "paradoxical", "up"} <= set(s.extra) for s in res.history.steps)
    first = res.history.steps[0]
    np.testing.assert_allclose([first.extra["E_qss"], first.extra["I_qss"]], solve_up([5, 2, 10, 2], d.p), rtol=1e-12)


@pytest.mark.parametrize("rule,lr", [("cross_homeostatic", 3e-3), ("exact", 3e-3)])
def test_rules_reach_set_point_in_qss(rule, lr):
    res = tcnet.run({**SPEC, "optimizer": {"name": rule, "lr": lr, "steps": 3000, "rtol": 0.01}}, progress=False)
    check_reached(res, "qss")


def test_cross_homeostatic_reaches_set_point_in_trials():
    spec = {**SPEC, "optimizer": {"name": "cross_homeostatic", "lr": 3e-3, "steps": 300, "rtol": 0.01,
                                  "mode": "trials", "trial_length": 150.0, "average": 50.0}}
    check_reached(tcnet.run(spec, progress=False), "trials")


@pytest.mark.slow
def test_exact_reaches_set_point_in_trials():
    spec = {**SPEC, "optimizer": {"name": "exact", "lr": 3e-3, "steps": 2000, "rtol": 0.01,
                                  "mode": "trials", "trial_length": 150.0, "average": 50.0}}
    check_reached(tcnet.run(spec, progress=False), "trials")


def test_qss_exact_step_is_minus_lr_gradient_and_weights_stay_nonnegative():
    d = dynamics()
    lr = 1e-3
    res = tcnet.run({**SPEC, "optimizer": {"name": "exact", "lr": lr, "steps": 1}}, progress=False)
    h = 1e-5

    def L(W):
        E, I = solve_up(W, d.p)
        return 0.5 * (E - 5) ** 2 + 0.5 * (I - 14) ** 2
    W0 = np.array([5.0, 2.0, 10.0, 2.0])
    g = np.array([(L(W0 + h * e) - L(W0 - h * e)) / (2 * h) for e in np.eye(4)])
    np.testing.assert_allclose(res.result.x, W0 - lr * g, rtol=1e-9)
    # a huge rate drives weights through zero: they are clipped there (and the network, without
    # inhibition, has no steady state: the run stops there)
    res = tcnet.run({**SPEC, "optimizer": {"name": "homeostatic", "lr": 1.0, "steps": 3}}, progress=False)
    assert res.result.status == "no_progress" and res.result.steps == 1
    assert np.all(res.result.x >= 0) and np.any(res.result.x == 0)


def test_runaway_trial_stops_the_run():
    spec = {"dynamics": {"name": "ei_rate", "W": [30.0, 0.1, 10.0, 0.1]}, "loss": [{"name": "homeostatic"}],
            "optimizer": {"name": "cross_homeostatic", "steps": 5, "mode": "trials", "trial_length": 100.0, "average": 50.0,
                          "r_max": 100.0}}
    res = tcnet.run(spec, progress=False)
    assert res.result.status == "no_progress" and "runaway" in res.result.message


def test_resume_continues_exactly():
    from tcnet.optim import Checkpoint

    spec = {**SPEC, "optimizer": {"name": "up_state", "lr": 1e-3, "steps": 12}}
    full = tcnet.run(spec, progress=False)
    mid = full.history.steps[5]
    resumed = tcnet.run(spec, progress=False, resume=Checkpoint.at(mid))
    assert [s.step for s in resumed.history.steps] == list(range(6, 13))
    np.testing.assert_array_equal(resumed.result.x, full.result.x)
