"""The generic path (tcnet.steady on `ei_circuit`) against the closed forms of the two-population
model (`tcnet_plugins.ei.model`, `rules`) at 48 random weights per preset: the steady state the
kicked protocol reaches, the homeostatic loss's gradient, the paradoxical response and the exact
rule's update in QSS and in trials; and the published circuits' own numbers."""
import autograd
import numpy as np
import pytest

import tcnet
from tcnet import steady as ss
from tcnet_plugins.ei import model as ei
from tcnet_plugins.ei import rules
from tcnet_plugins.ei.circuit import EICircuit
from tcnet_plugins.ei.circuit_trials import run_trial
from tcnet_plugins.ei.loss_rule import LossRule
from tcnet_plugins.ei.trials import Trial

PRESETS = ("paradoxical", "non_paradoxical")


def random_weights(preset, n=48):
    """n weight vectors (W_EE, W_EI, W_IE, W_II) spanning rest, E only, Up and runaway regimes."""
    rng = np.random.default_rng(29 if preset == "paradoxical" else 30)
    return rng.uniform([0.5, 0.3, 0.3, 0.3], [7.0, 4.0, 16.0, 4.0], size=(n, 4))


def circuit(preset, w):
    return EICircuit.create(preset=preset, W=np.reshape(w, (2, 2)).tolist())


def homeostatic(r, p):
    return 0.5 * (r[0] - p["E_set"]) ** 2 + 0.5 * (r[1] - p["I_set"]) ** 2


@pytest.mark.parametrize("preset", PRESETS)
def test_two_populations_equal_the_closed_forms(preset):
    """Steady state, gradient of the homeostatic loss, paradoxical response and the exact rule's QSS
    update: the generic path equals the closed forms to 1e-12 wherever the closed form reaches a
    steady state, and reaches none (NaN) where it does not."""
    p = ei.PRESETS[preset]["params"]
    regimes = set()
    for w in random_weights(preset):
        net = circuit(preset, w)
        E, I, regime = ei.steady_state(w, p)
        r = net.steady_rates(net.arrays["W"])
        regimes.add(int(regime))
        if regime == ei.RUNAWAY:
            assert np.all(np.isnan(r))
            continue
        np.testing.assert_allclose(r, [E, I], rtol=1e-12, atol=1e-12)
        grad = autograd.grad(lambda W: homeostatic(net.make_state({"W": W}).rates, p))(net.arrays["W"])
        closed = autograd.grad(lambda v: homeostatic(ei.fixed_point(v, p), p))(w)
        np.testing.assert_allclose(grad.ravel(), closed, rtol=1e-12, atol=1e-12 * np.abs(closed).max())
        if regime == 3:  # the Up state: paradoxical coefficient and the exact rule's closed form
            state = net.state()
            np.testing.assert_allclose(-state.response[1, 1], ei.paradoxical_coefficient(w, p), rtol=1e-12)
            assert bool(state.paradoxical[1]) == bool(ei.paradoxical_coefficient(w, p) > 0)
            eta = 1e-3
            np.testing.assert_allclose(-eta * grad.ravel(), rules.rule_update("exact", E, I, w, p, eta), rtol=1e-12,
                                       atol=1e-15)
    assert {0, 3, ei.RUNAWAY} <= regimes if preset == "paradoxical" else {1, 3} <= regimes


@pytest.mark.parametrize("preset", PRESETS)
def test_trials_update_at_measured_rates_equals_the_exact_rule(preset):
    """In trials mode the rule's implicit derivative (of the steady state's linearization) is taken
    at the rates a trial measured: where the steady state is the Up state that is the exact rule's
    S(E, I)^T (r_set - r) at any rates, to 1e-12."""
    p = ei.PRESETS[preset]["params"]
    rng = np.random.default_rng(5)
    checked = 0
    for w in random_weights(preset):
        net = circuit(preset, w)
        rule = LossRule(mode="trials", lr=1e-3)
        objective = tcnet.Objective(net, [tcnet.Term(tcnet.registry().get("loss", "set_points")())])
        rule.setup(objective)
        rule.objective = objective
        E, I = rng.uniform(0.0, 30.0, size=2)
        if ei.steady_state(w, p)[2] != 3:
            continue
        dW = -1e-3 * rule.gradient(net.vector(), None, [E, I])
        np.testing.assert_allclose(dW, rules.rule_update("exact", E, I, w, p, 1e-3), rtol=1e-12, atol=1e-15)
        checked += 1
    assert checked >= 5


def test_the_circuit_trial_is_the_two_population_trial():
    """The K-population Euler trial with the published protocol reproduces the two-population
    trial bit for bit (same noise draws, same update order, same clip)."""
    settings = {"integrator": "euler", "dt": 0.1, "trial_length": 2000.0, "kick": 7.0, "kick_onset": 250.0,
                "kick_duration": 10.0, "average": 500.0, "noise": 0.1, "noise_relaxation": 0.1,
                "clip": [100.0, 250.0], "seed": 3}
    trial = Trial.from_settings("test", settings)
    p = ei.PRESETS["paradoxical"]["params"]
    for w in random_weights("paradoxical", 6):
        net = circuit("paradoxical", w)
        (E, I), noise, _ = trial.run(w, p, (0.05, -0.02), 4)
        rates, noise_k = run_trial(trial, net, np.reshape(w, (2, 2)), (0.05, -0.02), 4)
        np.testing.assert_array_equal(rates, [E, I])
        np.testing.assert_array_equal(noise_k, noise)


@pytest.mark.parametrize("preset,rates", [("del_molino_low", (1.0, 10.0, 3.0, 2.0)),
                                          ("del_molino_high", (30.0, 50.0, 30.0, 20.0))])
def test_published_circuits_rest_at_their_baseline_and_SST_reverses(preset, rates):
    """The background currents of each published circuit put its steady state at its baseline rates
    (to the 4 digits the currents are given with); a small input to VIP lowers SST at low baseline
    and raises it at high baseline (the response reversal), both by the implicit response and by
    re-solving with the input stepped (central difference)."""
    net = EICircuit.create(preset=preset)
    state = net.state()
    np.testing.assert_allclose(state.rates, rates, rtol=3e-3)
    assert state.stable
    h = 1e-3
    u = np.zeros(4)
    u[3] = h
    up = ss.newton(net.field, (net.arrays["W"],), state.rates, u)[0]
    down = ss.newton(net.field, (net.arrays["W"],), state.rates, -u)[0]
    np.testing.assert_allclose(state.response[:, 3], (up - down) / (2 * h), rtol=1e-6, atol=1e-9)
    assert np.sign(state.response[2, 3]) == (-1 if preset == "del_molino_low" else 1)


def random_circuit(K, transfer, seed):
    """A stable K-population circuit (one E, K - 1 I) with random weights, transfer 'power'
    (n = 2, a supralinear circuit) or 'smooth' (s = 2), driven above threshold."""
    rng = np.random.default_rng(seed)
    types = ["E"] + ["I"] * (K - 1)
    W = rng.uniform(0.2, 1.0, size=(K, K)) * (0.25 if transfer == "power" else 1.0)
    W[:, 0] *= 0.6  # excitation weaker than inhibition: a stable, active circuit
    settings = dict(preset="del_molino_low", populations=[f"P{k}" for k in range(K)], types=types,
                    tau=rng.uniform(2.0, 10.0, K).tolist(), gain=rng.uniform(0.5, 1.5, K).tolist(),
                    threshold=rng.uniform(-1.0, 1.0, K).tolist(),
                    exponent=[2.0 if transfer == "power" else 1.0] * K,
                    smoothness=[0.0 if transfer == "power" else 2.0] * K, input=rng.uniform(3.0, 6.0, K).tolist(),
                    set_points=rng.uniform(1.0, 5.0, K).tolist(), connections=np.ones((K, K), int).tolist(),
                    kick=[0.0] * K, kick_duration=0.0, settle=2000.0, W=W.tolist())
    return EICircuit.create(**settings)


CIRCUITS = [(3, "power", 1), (3, "smooth", 2), (4, "power", 4), (4, "smooth", 4)]


@pytest.mark.parametrize("K,transfer,seed", CIRCUITS)
def test_implicit_gradient_equals_central_differences_of_the_resolved_steady_state(K, transfer, seed):
    net = random_circuit(K, transfer, seed)
    W = net.arrays["W"]
    r = net.steady_rates(W)
    assert np.all(np.isfinite(r)) and np.all(r > 0) and net.state().stable
    targets = net.set_points

    def loss(rates):
        return 0.5 * np.sum((rates - targets) ** 2)

    grad = autograd.grad(lambda w: 0.5 * autograd.numpy.sum((net.make_state({"W": w}).rates - targets) ** 2))(W)
    h = 1e-6
    fd = np.zeros_like(W)
    for idx in np.ndindex(W.shape):
        e = np.zeros_like(W)
        e[idx] = h
        plus, ok_p = ss.newton(net.field, (W + e,), r)
        minus, ok_m = ss.newton(net.field, (W - e,), r)
        assert ok_p and ok_m
        fd[idx] = (loss(plus) - loss(minus)) / (2 * h)
    np.testing.assert_allclose(grad, fd, rtol=1e-6, atol=1e-8 * np.abs(fd).max())


@pytest.mark.parametrize("K,transfer,seed", CIRCUITS)
def test_steady_input_response_equals_a_simulated_small_input_step(K, transfer, seed):
    """dr*/dh from the implicit response against simulations from the steady state with a small
    constant input added to one population (+-delta), run until they settle (LSODA at rtol 1e-8:
    the simulated difference is good to about 1e-8 |r| / delta)."""
    net = random_circuit(K, transfer, seed)
    r = net.steady_rates(net.arrays["W"])
    response = net.state().response
    delta = 1e-2
    for k in range(K):
        u = np.zeros(K)
        u[k] = delta
        ends = [ss.Protocol(start=tuple(r), segments=((5000.0, s * u),)).simulate(net.field, (net.arrays["W"],))
                for s in (1, -1)]
        np.testing.assert_allclose((ends[0] - ends[1]) / (2 * delta), response[:, k], rtol=1e-4,
                                   atol=1e-8 * np.abs(r).max() / delta)


@pytest.mark.parametrize("mode", ["qss", "trials"])
def test_loss_rule_runs_the_exact_rule_on_two_populations(mode):
    """loss_rule on the two-population circuit walks the exact rule's weights on ei_rate, step by
    step (QSS: the objective's gradient through the steady state; trials: the published noisy
    trial protocol and the implicit derivative at the rates each trial measured)."""
    extra = {"protocol": "soldado2022", "steps": 4, "lr": 5e-4} if mode == "trials" else {"steps": 6, "lr": 1e-3}
    w = [5.0, 2.0, 10.0, 2.0]
    exact = tcnet.run({"dynamics": {"name": "ei_rate", "W": w}, "loss": [{"name": "homeostatic"}],
                       "optimizer": {"name": "exact", "mode": mode, **extra}}, progress=False)
    generic = tcnet.run({"dynamics": {"name": "ei_circuit", "preset": "paradoxical", "W": [w[:2], w[2:]]},
                         "loss": [{"name": "set_points"}], "optimizer": {"name": "loss_rule", "mode": mode, **extra}},
                        progress=False)
    assert len(exact.history.steps) == len(generic.history.steps) == extra["steps"] + 1
    for a, b in zip(exact.history.steps, generic.history.steps):
        np.testing.assert_allclose(b.x, a.x, rtol=1e-12)
        np.testing.assert_allclose([b.extra["r_E"], b.extra["r_I"]], [a.extra["E"], a.extra["I"]], rtol=1e-12)


@pytest.mark.slow
def test_loss_rule_brings_the_published_four_population_circuit_to_its_set_points():
    """The high-baseline E-PV-SST-VIP circuit with its background currents lowered by 5% leaves its
    baseline (23.2, 47.4, 16.8, 12.1 Hz); the generic rule in QSS learns W back to the published
    baseline rates (30, 50, 30, 20) Hz within 0.1%, with a stable steady state throughout."""
    from tcnet_plugins.ei.presets import PRESETS as CIRCUITS

    inputs = (0.95 * np.array(CIRCUITS["del_molino_high"]["input"])).tolist()
    res = tcnet.run({"dynamics": {"name": "ei_circuit", "preset": "del_molino_high", "input": inputs},
                     "loss": [{"name": "set_points"}],
                     "optimizer": {"name": "loss_rule", "lr": 1e-4, "steps": 4000, "rtol": 1e-3}}, progress=False)
    assert res.result.status == "converged"
    steps = res.history.steps
    assert all(s.extra["stable"] == 1.0 for s in steps)
    start = [steps[0].extra[f"r_{p}"] for p in ("E", "PV", "SST", "VIP")]
    end = [steps[-1].extra[f"r_{p}"] for p in ("E", "PV", "SST", "VIP")]
    assert np.max(np.abs(np.array(start) / [30, 50, 30, 20] - 1)) > 0.2
    np.testing.assert_allclose(end, [30.0, 50.0, 30.0, 20.0], rtol=1e-3)
    W0, W1 = steps[0].x.reshape(4, 4), steps[-1].x.reshape(4, 4)
    np.testing.assert_array_equal(W1 == 0, W0 == 0)  # absent connections stay absent
