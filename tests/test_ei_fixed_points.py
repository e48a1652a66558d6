"""Every fixed point of the threshold-linear E/I model, on a grid of weights for both presets:
against an enumeration written here (numpy's linear solve of each sign pattern of the rate
equations), the residual of the equations, eigenvalues of a finite-difference Jacobian, and
long simulations from nearby starts and from the trial's start (rest, kick)."""
import itertools

import autograd
import autograd.numpy as anp
import numpy as np
import pytest

import tcnet
from tcnet_plugins.ei import model as ei
from tcnet_plugins.ei.trials import integrate

GRID = [np.array(W) for W in itertools.product((0.5, 1.5, 3.0, 6.0), (0.5, 2.0), (0.5, 4.0, 15.0), (0.5, 2.0))]
CASES = [(preset, W) for preset in ei.PRESETS for W in GRID]


def rhs(r, W, p):
    E, I = r
    W_EE, W_EI, W_IE, W_II = W
    return np.array([(-E + p["g_E"] * max(W_EE * E - W_EI * I - p["Theta_E"] + p["I_ext"], 0)) / p["tau_E"],
                     (-I + p["g_I"] * max(W_IE * E - W_II * I - p["Theta_I"], 0)) / p["tau_I"]])


def enumerate_fixed_points(W, p):
    """For each choice of active populations, solve E = a_E g_E x_E, I = a_I g_I x_I (a = 1 active,
    0 inactive) as a 2x2 linear system and keep the solutions whose inputs have the chosen signs."""
    W_EE, W_EI, W_IE, W_II = W
    found = []
    for a_E, a_I in itertools.product((0, 1), (0, 1)):
        A = np.array([[1 - a_E * p["g_E"] * W_EE, a_E * p["g_E"] * W_EI],
                      [-a_I * p["g_I"] * W_IE, 1 + a_I * p["g_I"] * W_II]])
        b = np.array([a_E * p["g_E"] * (p["I_ext"] - p["Theta_E"]), -a_I * p["g_I"] * p["Theta_I"]])
        if abs(np.linalg.det(A)) < 1e-12:
            continue
        E, I = np.linalg.solve(A, b)
        x_E, x_I = W_EE * E - W_EI * I - p["Theta_E"] + p["I_ext"], W_IE * E - W_II * I - p["Theta_I"]
        if (x_E > 0 if a_E else x_E <= 0) and (x_I > 0 if a_I else x_I <= 0):
            found.append((E, I))
    return sorted(found)


def eigenvalues_fd(r, W, p, h=1e-7):
    J = np.column_stack([(rhs(r + h * e, W, p) - rhs(r - h * e, W, p)) / (2 * h) for e in np.eye(2)])
    return np.linalg.eigvals(J)


@pytest.mark.parametrize("preset", list(ei.PRESETS))
def test_every_fixed_point_solves_the_equations_with_its_stability(preset):
    p = ei.PRESETS[preset]["params"]
    regimes = set()
    for W in GRID:
        E, I, exists, stable = ei.fixed_points(W, p)
        points = sorted(zip(E[exists], I[exists]))
        assert len(points) == len(enumerate_fixed_points(W, p))
        np.testing.assert_allclose(points, enumerate_fixed_points(W, p), rtol=1e-10, atol=1e-12)
        for k in np.flatnonzero(exists):
            r = np.array([E[k], I[k]])
            assert np.all(r >= 0)
            np.testing.assert_allclose(rhs(r, W, p), 0.0, atol=1e-12 * (1 + np.abs(r).max()))
            assert bool(stable[k]) == bool(np.all(eigenvalues_fd(r, W, p).real < 0))
            regimes.add(int(k))
    # the grid meets every region but I alone (which needs Theta_I < 0); rest needs I_ext <= Theta_E
    assert regimes == ({1, 3} if preset == "non_paradoxical" else {0, 1, 3})


def settle(W, p, x0, kick=0.0, T=3000.0):
    """Where the rate ODE is at time T from each start (RK45; NaN after a runaway above 1e4)."""
    t = np.array([0.0, T - 1.0, T])
    return np.array([integrate(W, p, x, t, kick=kick, kick_duration=10.0, r_max=1e4) for x in x0])


@pytest.mark.parametrize("preset", list(ei.PRESETS))
def test_each_stable_fixed_point_attracts_nearby_starts(preset):
    p = ei.PRESETS[preset]["params"]
    for W in GRID:
        E, I, _, stable = ei.fixed_points(W, p)
        for k in np.flatnonzero(stable):
            r = np.array([E[k], I[k]])
            starts = np.maximum(r + 0.02 * (1 + r) * np.array([[1, -1], [-1, 1]]), 0.0)
            np.testing.assert_allclose(settle(W, p, starts, T=1500.0)[:, -1], np.tile(r, (2, 1)), rtol=1e-5,
                                       atol=1e-7)


@pytest.mark.parametrize("preset,W", CASES)
def test_the_steady_state_is_where_the_kicked_trial_ends(preset, W):
    """From rest with the trial's kick (10 for 10 ms) the ODE ends at the QSS; where no fixed point
    is stable the QSS says runaway, and the rates do run away (or keep moving)."""
    p = ei.PRESETS[preset]["params"]
    E, I, regime = ei.steady_state(W, p)
    end = settle(W, p, [(0.0, 0.0)], kick=10.0, T=2000.0)[0]
    if regime == ei.RUNAWAY:
        assert np.isnan(E) and np.isnan(I)
        assert not np.all(np.isfinite(end)) or np.abs(end[-1] - end[-2]).max() > 1e-6
    else:
        np.testing.assert_allclose(end[-1], [E, I], rtol=1e-5, atol=1e-7)
        assert ei.region_of(E, I, W, p) == regime if regime else E == I == 0


@pytest.mark.parametrize("preset", list(ei.PRESETS))
def test_the_steady_state_batched_and_its_gradient_by_central_differences(preset):
    """The QSS of a batch of networks is each one's, and its gradient (only the reached region is
    traced) is the central difference of the rates in every regime reached on the grid."""
    p = ei.PRESETS[preset]["params"]
    E, I, regime = ei.steady_state(np.stack(GRID), p)
    h = 1e-6
    for k, W in enumerate(GRID):
        single = ei.steady_state(W, p)
        np.testing.assert_array_equal([single[0], single[1], single[2]], [E[k], I[k], regime[k]])
        if regime[k] == ei.RUNAWAY:
            continue
        grad = autograd.jacobian(lambda w: anp.stack(ei.steady_state(w, p)[:2]))(W)
        fd = np.column_stack([np.subtract(ei.steady_state(W + h * e, p)[:2], ei.steady_state(W - h * e, p)[:2])
                              / (2 * h) for e in np.eye(4)])
        np.testing.assert_allclose(grad, fd, rtol=1e-6, atol=1e-6)


def test_non_paradoxical_network_with_weak_inhibition_settles_with_E_alone():
    """The issue's case: I_ext = 8 > Theta_E, W = (1.5, 1, 0.5, 2): E = g_E (I_ext - Theta_E) /
    (1 - g_E W_EE) = 0.5 * 3.2 / 0.25 = 6.4 and I = 0 (W_IE E = 3.2 < Theta_I = 25)."""
    p = ei.PRESETS["non_paradoxical"]["params"]
    W = np.array([1.5, 1.0, 0.5, 2.0])
    E, I, regime = ei.steady_state(W, p)
    assert (float(E), float(I), int(regime)) == pytest.approx((6.4, 0.0, 1))
    assert ei.REGIONS[regime] == "E only"
    net = tcnet.registry().get("dynamics", "ei_rate").create(preset="non_paradoxical", W=W.tolist())
    np.testing.assert_allclose(net.simulate(np.zeros(2), np.array([0.0, 2000.0]))[-1], [6.4, 0.0], rtol=1e-7)
    state = net.state()
    np.testing.assert_allclose([state.E, state.I], [6.4, 0.0], rtol=1e-12)
    assert state.regime == 1


def test_qss_gradient_in_the_E_only_regime_matches_finite_differences():
    p = ei.PRESETS["non_paradoxical"]["params"]
    W = np.array([1.5, 1.0, 0.5, 2.0])
    net = tcnet.registry().get("dynamics", "ei_rate").create(preset="non_paradoxical", W=W.tolist())
    objective = tcnet.Objective(net, [tcnet.Term(tcnet.registry().get("loss", "homeostatic")())])
    h = 1e-6

    def loss(w):
        E, I = enumerate_fixed_points(w, p)[-1]  # the only fixed point here
        return 0.5 * (E - 5) ** 2 + 0.5 * (I - 14) ** 2
    fd = [(loss(W + h * e) - loss(W - h * e)) / (2 * h) for e in np.eye(4)]
    np.testing.assert_allclose(objective.evaluate(W).grad, fd, rtol=1e-6, atol=1e-9)


def test_runaway_has_no_steady_state_and_stops_a_qss_run():
    W = np.array([30.0, 0.1, 10.0, 0.1])  # D < 0: the Up state is gone, E and I grow without bound
    p = ei.PRESETS["paradoxical"]["params"]
    E, I, regime = ei.steady_state(W, p)
    assert regime == ei.RUNAWAY and np.isnan(E) and np.isnan(I)
    assert not np.all(np.isfinite(settle(W, p, [(0.0, 0.0)], kick=10.0)))
    res = tcnet.run({"dynamics": {"name": "ei_rate", "W": W.tolist()}, "loss": [{"name": "homeostatic"}],
                     "optimizer": {"name": "cross_homeostatic", "steps": 5}}, progress=False)
    assert res.result.status == "no_progress" and "no steady state" in res.result.message


def test_history_records_the_regime_of_every_step():
    res = tcnet.run({"dynamics": {"name": "ei_rate", "preset": "non_paradoxical", "W": [1.5, 1.0, 0.5, 2.0]},
                     "loss": [{"name": "homeostatic"}], "optimizer": {"name": "exact", "steps": 3, "lr": 1e-3}},
                    progress=False)
    assert [s.extra["regime"] for s in res.history.steps] == [1.0] * 4
