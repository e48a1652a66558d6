"""Closed forms of the E/I model and the learning rules against independent computations:
numpy's linear solve and eigenvalues, long ODE integrations, central finite differences, the
published set-point weights, and autograd through the fixed point."""
import autograd.numpy as anp
import numpy as np
import pytest
from autograd import jacobian

from tcnet_plugins.ei import model as ei
from tcnet_plugins.ei import rules
from tcnet_plugins.ei.trials import integrate

PAR = ei.PRESETS["paradoxical"]["params"]
NON = ei.PRESETS["non_paradoxical"]["params"]
W_PAR = np.array(ei.PRESETS["paradoxical"]["W"])
W_NON = np.array(ei.PRESETS["non_paradoxical"]["W"])
# a parameter set with an Up state around W = 0 (tonic drive above both thresholds), for the
# small-weight expansion
TONIC = {**PAR, "I_ext": 10.0, "Theta_I": -5.0}


def solve_up(W, p):
    """The Up state by numpy's linear solve of the suprathreshold system (independent of Cramer)."""
    W_EE, W_EI, W_IE, W_II = W
    A = np.array([[1 - p["g_E"] * W_EE, p["g_E"] * W_EI], [-p["g_I"] * W_IE, 1 + p["g_I"] * W_II]])
    b = np.array([p["g_E"] * (p["I_ext"] - p["Theta_E"]), -p["g_I"] * p["Theta_I"]])
    return np.linalg.solve(A, b)


def loss_fd(W, p):
    E, I = solve_up(W, p)
    return 0.5 * (E - p["E_set"]) ** 2 + 0.5 * (I - p["I_set"]) ** 2


def rhs(r, W, p):
    E, I = r
    W_EE, W_EI, W_IE, W_II = W
    return np.array([(-E + p["g_E"] * max(W_EE * E - W_EI * I - p["Theta_E"] + p["I_ext"], 0)) / p["tau_E"],
                     (-I + p["g_I"] * max(W_IE * E - W_II * I - p["Theta_I"], 0)) / p["tau_I"]])


@pytest.mark.parametrize("W,p", [(W_PAR, PAR), (W_NON, NON)])
def test_up_state_matches_linear_solve_and_long_simulation(W, p):
    E, I = ei.fixed_point(W, p)
    np.testing.assert_allclose([E, I], solve_up(W, p), rtol=1e-12)
    assert E > 0 and I > 0
    # the ODE started near the Up state (with a kick from rest for the bistable paradoxical set)
    r = integrate(W, p, (0.0, 0.0), np.array([0.0, 2000.0]), kick=10.0, kick_duration=10.0)
    np.testing.assert_allclose(r[-1], [E, I], rtol=1e-6)


def test_down_state_when_no_up_state():
    W = np.array([0.5, 2.0, 1.0, 2.0])  # weak E -> I: the linear solution has I < 0
    assert solve_up(W, PAR)[1] < 0
    assert ei.fixed_point(W, PAR) == (0.0, 0.0)
    assert not ei.up_exists(W, PAR) and not ei.stable_up(W, PAR)
    # rest is a fixed point (Theta_E > I_ext) and the ODE from a small perturbation returns to it
    r = integrate(W, PAR, (1.0, 1.0), np.array([0.0, 500.0]))
    np.testing.assert_allclose(r[-1], [0.0, 0.0], atol=1e-8)


UNSTABLE = np.array([30.0, 3.0, 10.0, 0.5])  # Up state exists (E, I > 0), trace > 0


@pytest.mark.parametrize("W,p", [(W_PAR, PAR), (W_NON, NON), (UNSTABLE, PAR)])
def test_jacobian_eigenvalues_and_stability_conditions(W, p):
    r = solve_up(W, p)
    h = 1e-6
    J_fd = np.column_stack([(rhs(r + h * e, W, p) - rhs(r - h * e, W, p)) / (2 * h) for e in np.eye(2)])
    J = ei.jacobian(W, p)
    np.testing.assert_allclose(J, J_fd, rtol=1e-7, atol=1e-9)
    tr, det = ei.trace_det(W, p)
    np.testing.assert_allclose([tr, det], [np.trace(J_fd), np.linalg.det(J_fd)], rtol=1e-7)
    lam = np.linalg.eigvals(J_fd)
    assert bool(ei.stable_up(W, p)) == bool(np.all(lam.real < 0) and np.all(r > 0))


def test_unstable_case_is_flagged():
    assert np.all(solve_up(UNSTABLE, PAR) > 0) and ei.up_exists(UNSTABLE, PAR)
    lam = np.linalg.eigvals(ei.jacobian(UNSTABLE, PAR))
    assert lam.real.max() > 0 and not ei.stable_up(UNSTABLE, PAR)


@pytest.mark.parametrize("W,p,sign", [(W_PAR, PAR, 1), (W_NON, NON, -1)])
def test_paradoxical_coefficient_is_dI_dTheta_I(W, p, sign):
    h = 1e-4
    dI = (solve_up(W, {**p, "Theta_I": p["Theta_I"] + h})[1] - solve_up(W, {**p, "Theta_I": p["Theta_I"] - h})[1]) / (2 * h)
    c = ei.paradoxical_coefficient(W, p)
    np.testing.assert_allclose(c, dI, rtol=1e-7)
    assert np.sign(c) == sign


def test_published_set_point_weights_stable_and_paradoxical():
    W_EI, W_II = ei.set_point_weights(5.0, 10.0, PAR)
    np.testing.assert_allclose([W_EI, W_II], [15.2 / 14, 21.5 / 14], rtol=1e-14)
    W = np.array([5.0, W_EI, 10.0, W_II])
    np.testing.assert_allclose(solve_up(W, PAR), [5.0, 14.0], rtol=1e-12)
    assert np.all(np.linalg.eigvals(ei.jacobian(W, PAR)).real < 0) and ei.stable_up(W, PAR)
    assert ei.paradoxical_coefficient(W, PAR) > 0


def test_set_point_positivity_and_up_coefficients():
    rng = np.random.default_rng(1)
    for W_EE, W_IE in rng.uniform(0, 12, size=(50, 2)):
        W_EI, W_II = ei.set_point_weights(W_EE, W_IE, PAR)
        AA, BB, CC, DD = ei.up_coefficients(W_EE, W_IE, PAR)
        assert (W_EI > 0) == (AA > 0)
        assert (W_II > 0) == (PAR["g_I"] * BB > PAR["I_set"])
        W = np.array([W_EE, W_EI, W_IE, W_II])
        A = np.array([[1 - W_EE, W_EI], [-4 * W_IE, 1 + 4 * W_II]])  # g_E = 1, g_I = 4
        np.testing.assert_allclose(np.linalg.det(A), PAR["g_I"] * DD / PAR["I_set"], rtol=1e-9, atol=1e-9)
        if abs(np.linalg.det(A)) > 1e-3:
            np.testing.assert_allclose(solve_up(W, PAR), [5.0, 14.0], rtol=1e-8)


def autograd_sensitivity(W, p):
    return jacobian(lambda w: anp.stack(ei.fixed_point(w, p)))(np.asarray(W, dtype=float))


def exact_update_autograd(W, p, eta):
    """-eta dL/dW by autograd through the closed-form fixed point."""
    E, I = ei.fixed_point(W, p)
    S = autograd_sensitivity(W, p)
    return -eta * (S.T @ np.array([E - p["E_set"], I - p["I_set"]]))


@pytest.mark.parametrize("W,p", [(W_PAR, PAR), (W_NON, NON), (np.array([6.0, 1.5, 9.0, 1.7]), PAR)])
def test_exact_rule_equals_central_finite_differences(W, p):
    assert ei.up_exists(W, p)
    h = 1e-5
    g_fd = np.array([(loss_fd(W + h * e, p) - loss_fd(W - h * e, p)) / (2 * h) for e in np.eye(4)])
    eta = 0.1
    np.testing.assert_allclose(exact_update_autograd(W, p, eta), -eta * g_fd, rtol=1e-7)
    E, I = ei.fixed_point(W, p)
    np.testing.assert_allclose(rules.rule_update("exact", E, I, W, p, eta), -eta * g_fd, rtol=1e-7)
    np.testing.assert_allclose(ei.sensitivities(E, I, W, p), autograd_sensitivity(W, p), rtol=1e-10)


def exact_at_rates(W, E, I, p):
    """The exact implicit derivative with the rates unexpanded, built from autograd's sensitivity at
    the fixed point: its W_EE, W_IE columns are proportional to E, its W_EI, W_II columns to I."""
    E0, I0 = ei.fixed_point(W, p)
    S = autograd_sensitivity(W, p) * np.array([E / E0, I / I0, E / E0, I / I0])
    return S.T @ np.array([p["E_set"] - E, p["I_set"] - I])


def test_up_state_rule_equals_exact_at_set_point_weights():
    """At set-point weights the QSS gradient is zero, so the meaningful comparison is the rule as a
    function of the rates: for any (E, I) (as in a trial that has not settled) the up_state rule
    equals the exact implicit derivative with the same rates, to rounding."""
    rng = np.random.default_rng(2)
    for W_EE, W_IE in [(5.0, 10.0), (7.0, 12.0), (3.0, 8.0)]:
        W_EI, W_II = ei.set_point_weights(W_EE, W_IE, PAR)
        W = np.array([W_EE, W_EI, W_IE, W_II])
        for E, I in rng.uniform([1, 5], [9, 25], size=(5, 2)):
            np.testing.assert_allclose(rules.rule_update("up_state", E, I, W, PAR, 1.0), exact_at_rates(W, E, I, PAR),
                                       rtol=1e-9)


def test_up_state_rule_error_is_first_order_away_from_set_point_weights():
    W_EI, W_II = ei.set_point_weights(5.0, 10.0, PAR)
    W_star = np.array([5.0, W_EI, 10.0, W_II])
    u = np.array([0.3, -0.2, 0.5, 0.4])
    errors = []
    for delta in (0.04, 0.02, 0.01):
        W = W_star + delta * u
        E, I = 4.0, 12.0  # fixed rates, so the error is the coefficients' alone
        errors.append(np.linalg.norm(rules.rule_update("up_state", E, I, W, PAR, 1.0, reference=(W[0], W[2]))
                                     - exact_at_rates(W, E, I, PAR)))
    ratios = np.array(errors[:-1]) / np.array(errors[1:])
    np.testing.assert_allclose(ratios, 2.0, rtol=0.05)


def test_small_weight_rule_is_exact_to_first_order_near_zero():
    """Along W = s W0 the small-weight rule differs from -eta dL/dW (QSS rates) by O(s^2)."""
    W0 = np.array([0.8, 0.5, 1.0, 0.6])
    errors = []
    for s in (0.005, 0.0025, 0.00125):
        W = s * W0
        E, I = ei.fixed_point(W, TONIC)
        assert E > 0 and I > 0
        exact = exact_update_autograd(W, TONIC, 1.0)
        errors.append(np.linalg.norm(rules.rule_update("small_weight", E, I, W, TONIC, 1.0) - exact))
    ratios = np.array(errors[:-1]) / np.array(errors[1:])
    np.testing.assert_allclose(ratios, 4.0, rtol=0.05)


def test_cross_and_naive_rules_have_the_published_signs():
    E, I = 3.0, 10.0  # both rates below set point (5, 14)
    dW = rules.rule_update("cross_homeostatic", E, I, W_PAR, PAR, 0.1)
    np.testing.assert_allclose(dW, 0.1 * np.array([E * 4, -I * 4, -E * 2, I * 2]))
    dW = rules.rule_update("homeostatic", E, I, W_PAR, PAR, 0.1)
    np.testing.assert_allclose(dW, 0.1 * np.array([E * 2, -I * 2, E * 4, -I * 4]))
