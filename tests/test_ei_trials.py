"""The published trial protocol (Soldado-Magraner et al. 2022) as settings of the learning rules'
trial mode: a short run against a plain-Python loop written here from the paper's description,
the Euler integrator against scipy's RK45, the preset, validation, and exact resumption."""
import numpy as np
import pytest

import tcnet
from tcnet.plugins import registry
from tcnet_plugins.ei import model as ei
from tcnet_plugins.ei.trials import PROTOCOLS, Trial, integrate

START = [2.1, 3.0, 4.0, 1.5]  # the published initial weights: the network starts in the Down state
P = ei.PRESETS["paradoxical"]["params"]
LEARN_DEFAULTS = registry().get("optimizer", "cross_homeostatic").SETTINGS.defaults


def spec(W=START, **settings):
    return {"dynamics": {"name": "ei_rate", "W": list(W)}, "loss": [{"name": "homeostatic"}],
            "optimizer": {"name": "cross_homeostatic", "protocol": "soldado2022", **settings}}


def reference(W, trials, length, average, seed, clip=(100.0, 250.0)):
    """The published protocol as a plain loop: per step OU noise on each input, E's Euler step, I's
    step with the new E, clipping; per trial the mean of the last `average` ms, low-passed across
    trials, floored at 1 for the cross-homeostatic rule, weights floored at 0.1. Returns the
    weights before each trial and after the last, and the low-passed rates of each trial."""
    dt, n, n_avg = 0.1, int(round(length / 0.1)), int(round(average / 0.1))
    W_EE, W_EI, W_IE, W_II = W
    n_E = n_I = 0.0
    E_avg = I_avg = 0.0
    weights, rates = [], []
    for k in range(trials):
        weights.append([W_EE, W_EI, W_IE, W_II])
        z = np.random.default_rng([seed, k]).standard_normal((n, 2))
        E = I = 0.0
        E_sum = I_sum = 0.0
        for j in range(n):
            n_E = n_E + 0.1 * (0.0 - n_E) + 0.1 * z[j, 0]
            n_I = n_I + 0.1 * (0.0 - n_I) + 0.1 * z[j, 1]
            kick = 7.0 if 2500 <= j < 2600 else 0.0
            E = E + (dt / 10.0) * (-E + 1.0 * max(W_EE * E - W_EI * I - 4.8 + kick + n_E, 0.0))
            I = I + (dt / 2.0) * (-I + 4.0 * max(W_IE * E - W_II * I - 25.0 + n_I, 0.0))
            E, I = min(E, clip[0]), min(I, clip[1])
            if j >= n - n_avg:
                E_sum, I_sum = E_sum + E, I_sum + I
        E_avg = E_avg + 0.5 * (E_sum / n_avg - E_avg)
        I_avg = I_avg + 0.5 * (I_sum / n_avg - I_avg)
        rates.append([E_avg, I_avg])
        E_r, I_r = max(1.0, E_avg), max(1.0, I_avg)
        a = 5e-4
        W_EE, W_EI, W_IE, W_II = (max(W_EE + a * E_r * (14.0 - I_r), 0.1), max(W_EI - a * I_r * (14.0 - I_r), 0.1),
                                  max(W_IE - a * E_r * (5.0 - E_r), 0.1), max(W_II + a * I_r * (5.0 - E_r), 0.1))
    weights.append([W_EE, W_EI, W_IE, W_II])
    return np.array(weights), np.array(rates)


def test_short_published_run_equals_a_plain_loop():
    trials, length, average = 12, 400.0, 100.0
    res = tcnet.run(spec(steps=trials, trial_length=length, average=average, seed=3), progress=False)
    W_ref, r_ref = reference(START, trials + 1, length, average, seed=3)  # step k is trial k, 0..trials
    steps = res.history.steps
    np.testing.assert_allclose([s.x for s in steps], W_ref[:-1], rtol=1e-12)
    np.testing.assert_allclose(res.result.x, W_ref[-2], rtol=1e-12)
    low_passed = np.array([[s.extra["E"], s.extra["I"]] for s in steps])
    np.testing.assert_allclose(low_passed, np.maximum(r_ref, 1.0), rtol=1e-12)
    # the kick does not start the Up state from these weights: the rule sees the floor, and learns
    assert r_ref[0].max() < 1.0 and low_passed[0].tolist() == [1.0, 1.0]
    assert not np.allclose(W_ref[-1], START)
    # another seed draws other noise
    other = tcnet.run(spec(steps=trials, trial_length=length, average=average, seed=4), progress=False)
    assert not np.allclose(other.result.x, res.result.x, rtol=1e-9)


def test_clipped_rates_equal_the_plain_loop():
    """A runaway network (strong W_EE, weak inhibition) hits the clip and the run goes on."""
    W = [12.0, 0.5, 3.0, 0.5]
    res = tcnet.run(spec(W, steps=3, trial_length=400.0, average=100.0, seed=0), progress=False)
    W_ref, r_ref = reference(W, 4, 400.0, 100.0, seed=0)
    np.testing.assert_allclose(res.result.x, W_ref[-2], rtol=1e-12)
    np.testing.assert_allclose([s.extra["E"] for s in res.history.steps], r_ref[:, 0], rtol=1e-12)
    trial = Trial.from_settings("test", {**LEARN_DEFAULTS, **PROTOCOLS["soldado2022"], "trial_length": 400.0,
                                         "average": 100.0})
    _, _, trace = trial.run(np.array(W), P, record=True)
    assert trace.max(axis=0).tolist() == [100.0, 250.0]
    assert res.result.status == "max_steps"


def euler_error(dt, W):
    """Largest deviation of a noise-free Euler trial from scipy's RK45 (rtol 1e-8) on its grid."""
    settings = {**LEARN_DEFAULTS, "integrator": "euler", "dt": dt, "trial_length": 400.0, "kick": 7.0,
                "kick_onset": 250.0, "kick_duration": 10.0, "average": 100.0}
    _, _, trace = Trial.from_settings("test", settings).run(W, P, record=True)
    t = np.linspace(0.0, 400.0, len(trace) + 1)
    exact = integrate(W, P, (0.0, 0.0), t, 7.0, 10.0, kick_onset=250.0)[1:]
    return np.max(np.abs(trace - exact))


def test_euler_trial_converges_to_rk45_at_first_order():
    W_EI, W_II = ei.set_point_weights(5.0, 10.0, P)
    W = np.array([5.0, W_EI, 10.0, W_II])  # the kick starts the Up state (5, 14)
    errors = [euler_error(dt, W) for dt in (0.1, 0.05, 0.025)]
    assert errors[0] < 1.0  # Hz, at the steepest point of the kick's transient
    np.testing.assert_allclose(np.array(errors[:-1]) / errors[1:], 2.0, rtol=0.15)


def test_adaptive_trial_reaches_the_up_state_and_averages_its_window():
    W_EI, W_II = ei.set_point_weights(5.0, 10.0, P)
    W = np.array([5.0, W_EI, 10.0, W_II])
    settings = {**LEARN_DEFAULTS, "trial_length": 1000.0, "kick": 7.0, "kick_onset": 250.0, "average": 300.0}
    (E, I), _, trace = Trial.from_settings("test", settings).run(W, P, record=True)
    np.testing.assert_allclose([E, I], [5.0, 14.0], rtol=1e-6)
    assert np.all(trace[:2400] == 0.0)  # at rest until the kick (t = 250 ms is grid point 2500)


def test_protocol_preset_is_stored_and_explicit_keys_override_it():
    rule = registry().get("optimizer", "cross_homeostatic")(protocol="soldado2022", seed=7, steps=5)
    published = PROTOCOLS["soldado2022"]
    assert {k: rule.config[k] for k in published if k != "steps"} == {k: v for k, v in published.items()
                                                                       if k != "steps"}
    assert rule.config["steps"] == 5 and rule.config["seed"] == 7 and rule.config["protocol"] == "soldado2022"
    rebuilt = type(rule).from_config({k: v for k, v in rule.config.items() if k != "name"}, None)
    assert rebuilt.settings == rule.settings and rebuilt.trial == rule.trial
    assert rule.trial.clip == (100.0, 250.0) and rule.trial.integrator == "euler"


@pytest.mark.parametrize("settings,word", [
    ({"protocol": "soldado2023"}, "protocol"), ({"integrator": "rk4"}, "integrator"),
    ({"mode": "trials", "noise": 0.1}, "noise"), ({"clip": [100.0]}, "clip"), ({"clip": [100.0, -1.0]}, "clip"),
    ({"protocol": "soldado2022", "dt": 0.0}, "dt"), ({"smoothing": 0.0}, "smoothing"),
    ({"protocol": "soldado2022", "kick_onset": 2500.0}, "kick_onset"), ({"w_min": -0.1}, "w_min"),
    ({"rate_floor": float("nan")}, "rate_floor"), ({"seed": -1}, "seed"),
    ({"protocol": "soldado2022", "average": 1800.0}, "average"),
])
def test_invalid_trial_settings_name_the_setting(settings, word):
    with pytest.raises(tcnet.ConfigError, match=word):
        registry().get("optimizer", "cross_homeostatic")(**settings)


def test_resumed_noisy_run_continues_exactly():
    from tcnet.optim import Checkpoint

    s = spec(steps=8, trial_length=400.0, average=100.0, seed=1)
    full = tcnet.run(s, progress=False)
    mid = full.history.steps[4]
    resumed = tcnet.run(s, progress=False, resume=Checkpoint.at(mid))
    assert [st.step for st in resumed.history.steps] == list(range(5, 9))
    np.testing.assert_array_equal(resumed.result.x, full.result.x)
    np.testing.assert_array_equal([st.extra["E"] for st in resumed.history.steps],
                                  [st.extra["E"] for st in full.history.steps[5:]])


@pytest.mark.slow
def test_published_run_leaves_the_down_state_and_learns_the_set_points():
    """The issue's target: 2000 published trials from the Down state end within 1 % of (5, 14)."""
    res = tcnet.run(spec(seed=0), progress=False)
    rates = np.array([[s.extra["E"], s.extra["I"]] for s in res.history.steps])
    assert rates[0].tolist() == [1.0, 1.0]  # floored: the first trials are in the Down state
    np.testing.assert_allclose(rates[-100:], np.tile([5.0, 14.0], (100, 1)), rtol=0.01)
