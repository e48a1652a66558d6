"""The toy Gaussian plugin: closed forms against numeric minimizers and finite differences,
and the validation of its configuration."""
import numpy as np
import pytest
import scipy.optimize

import tcnet
from tcnet import ConfigError, Objective, Term
from tcnet_plugins.constraints.toy_gaussian import (
    ToyConstraint, ToyGaussian, ToyObjective, alternating_fixed_point, constrained_optimum, lagrangian_critical_rho,
    lagrangian_discrete_critical_rho, lagrangian_step_jacobian,
)

SLIDES = dict(u=(1.0, 1.5), C=((1.0, 0.7), (0.7, 1.0)), target=3.0, index=1)
CASES = [SLIDES,
         dict(u=(-0.5, 2.0), C=((2.0, -0.6), (-0.6, 0.8)), target=0.5, index=0),
         dict(u=(0.3, -1.0), C=((0.5, 0.2), (0.2, 3.0)), target=-2.0, index=1)]


def f_numpy(x, u, C):
    d = np.asarray(x, float) - np.asarray(u, float)
    return -np.exp(-d @ np.asarray(C, float) @ d)


def grad_numpy(x, u, C):
    d = np.asarray(x, float) - np.asarray(u, float)
    C = np.asarray(C, float)
    return 2 * np.exp(-d @ C @ d) * (C @ d)


@pytest.mark.parametrize("case", CASES)
def test_constrained_optimum_matches_numeric_minimizers(case):
    x, lam = constrained_optimum(**case)
    i, t = case["index"], case["target"]
    j = 1 - i

    def on_line(z):
        p = np.empty(2)
        p[i], p[j] = t, z
        return f_numpy(p, case["u"], case["C"])

    line = scipy.optimize.minimize_scalar(on_line, bracket=(-5, 5), tol=1e-12)
    assert x[i] == t
    assert x[j] == pytest.approx(line.x, abs=1e-6)
    slsqp = scipy.optimize.minimize(lambda p: f_numpy(p, case["u"], case["C"]), np.array(case["u"]) + 0.1,
                                    method="SLSQP", constraints=[{"type": "eq", "fun": lambda p: p[i] - t}],
                                    options={"ftol": 1e-14, "maxiter": 500})
    assert np.allclose(x, slsqp.x, atol=1e-5)
    # the multiplier: grad f + lambda e_i = 0 at x*, grad f by central differences
    h = 1e-6
    e = np.eye(2)
    fd = np.array([(f_numpy(x + h * e[k], case["u"], case["C"]) - f_numpy(x - h * e[k], case["u"], case["C"])) / (2 * h)
                   for k in range(2)])
    assert fd[j] == pytest.approx(0.0, abs=1e-8)
    assert lam == pytest.approx(-fd[i], rel=1e-7)


def test_slides_optimum_is_the_hand_value():
    x, _ = constrained_optimum()
    # x1 = u1 - C12 (3 - u2) / C11 = 1 - 0.7 * 1.5 = -0.05
    assert np.allclose(x, [-0.05, 3.0], atol=1e-15)


def test_losses_values_and_gradients_against_numpy_and_finite_differences():
    rng = np.random.default_rng(3)
    points = rng.normal(size=(4, 2)) + [1.0, 1.5]
    dyn = ToyGaussian.create(start=points)
    obj = Objective(dyn, [Term(ToyObjective(), 1.0, "f"), Term(ToyConstraint(target=3.0, index=1), 0.5, "c")])
    ev = obj.evaluate(points.ravel())
    f_ref = sum(f_numpy(p, SLIDES["u"], SLIDES["C"]) for p in points)
    c_ref = float(np.sum((points[:, 1] - 3.0) ** 2))
    assert ev.terms["f"] == pytest.approx(f_ref, rel=1e-12)
    assert ev.terms["c"] == pytest.approx(c_ref, rel=1e-12)
    h = 1e-6
    fd = np.array([(obj(points.ravel() + h * e) - obj(points.ravel() - h * e)) / (2 * h) for e in np.eye(8)])
    assert np.allclose(ev.grad, fd, atol=1e-8)
    residual = ToyConstraint(target=3.0, index=1).residual(dyn.state())
    assert np.allclose(residual, points[:, 1] - 3.0)


def alternating_map(x, a, b, case):
    """One iteration of the slides' loop in plain numpy: SGD(a) on f over x, SGD(b) on (x_i - t)^2 over x_i."""
    y = x - a * grad_numpy(x, case["u"], case["C"])
    i = case["index"]
    y[i] = y[i] - b * 2 * (y[i] - case["target"])
    return y


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("a,b", [(0.01, 0.2), (0.05, 0.1)])
def test_alternating_fixed_point_solves_the_two_dimensional_map(case, a, b):
    x_star, _ = constrained_optimum(**case)
    root = scipy.optimize.fsolve(lambda x: alternating_map(x, a, b, case) - x, x_star, xtol=1e-14)
    fp = alternating_fixed_point(lr=a, constraint_lr=b, **case)
    assert np.allclose(fp, root, atol=1e-9)
    assert np.linalg.norm(fp - x_star) > 1e-4  # a genuine bias, not the optimum


@pytest.mark.parametrize("C,message", [
    (((1.0, 2.0), (2.0, 1.0)), "C must be positive definite"),
    (((1.0, 0.0), (0.0, 0.0)), "C must be positive definite"),
    (((1.0, 0.5), (0.2, 1.0)), "C must be symmetric"),
    (((1.0, 0.5, 0.0), (0.5, 1.0, 0.0)), "C must be a 2 x 2 list of numbers"),
])
def test_invalid_covariance_is_a_config_error(C, message):
    with pytest.raises(ConfigError, match=message):
        ToyGaussian.create(C=C)
    with pytest.raises(ConfigError, match=message):
        tcnet.run({"dynamics": {"name": "toy_gaussian", "C": C}, "loss": [{"name": "toy_objective"}],
                   "optimizer": {"name": "sgd", "steps": 1}}, progress=False)


def test_invalid_constraint_and_points_are_config_errors():
    with pytest.raises(ConfigError, match=r"toy_constraint: index must be an integer in \[0, 1\]"):
        ToyConstraint(index=2)
    with pytest.raises(ConfigError, match="toy_constraint: target must be a finite real number"):
        ToyConstraint(target=float("nan"))
    with pytest.raises(ConfigError, match="x must have shape"):
        ToyGaussian.create(start=[1.0, 2.0, 3.0])
    with pytest.raises(ConfigError, match="constraint_lr must be in"):
        alternating_fixed_point(constraint_lr=0.6)


@pytest.mark.parametrize("kappa", [0.5, 1.0, 2.0])
def test_lagrangian_critical_rho_is_where_the_linearized_flow_loses_stability(kappa):
    x, _ = constrained_optimum()
    H = np.empty((2, 2))
    h = 1e-4
    for k, e in enumerate(np.eye(2)):  # Hessian of f at x* by central differences of the gradient
        H[:, k] = (grad_numpy(x + h * e, SLIDES["u"], SLIDES["C"]) - grad_numpy(x - h * e, SLIDES["u"], SLIDES["C"])) / (2 * h)
    e = np.array([[0.0], [1.0]])
    lr, eta = kappa, 1.0

    def growth(rho):
        K = np.block([[-lr * (H + rho * e @ e.T), -lr * e], [eta * e.T, np.zeros((1, 1))]])
        return np.linalg.eigvals(K).real.max()

    assert growth(0.0) > 0  # the basic method is unstable at the slides' optimum
    crossing = scipy.optimize.brentq(growth, 0.0, 5.0, xtol=1e-12)
    assert lagrangian_critical_rho(kappa=kappa) == pytest.approx(crossing, abs=1e-6)


def test_lagrangian_step_jacobian_is_the_derivative_of_one_step():
    """Central differences of one Lagrangian step (x, lambda) -> (x - lr grad_x L, lambda + eta g),
    written here with the numpy gradient of f, at (x*, lambda*)."""
    x_star, lam_star = constrained_optimum()
    lr, eta, rho = 0.05, 0.03, 0.4

    def step(z):
        x, lam = z[:2], z[2]
        g = x[1] - 3.0
        grad_L = grad_numpy(x, SLIDES["u"], SLIDES["C"]) + (lam + rho * g) * np.array([0.0, 1.0])
        return np.append(x - lr * grad_L, lam + eta * g)

    z, h = np.append(x_star, lam_star), 1e-6
    fd = np.column_stack([(step(z + h * e) - step(z - h * e)) / (2 * h) for e in np.eye(3)])
    np.testing.assert_allclose(lagrangian_step_jacobian(rho, lr, eta), fd, rtol=0, atol=1e-8)


@pytest.mark.parametrize("kappa", [1.0, 2.0])
def test_discrete_critical_rho_tends_to_the_small_step_limit(kappa):
    small = lagrangian_discrete_critical_rho(lr=1e-3 * kappa, multiplier_lr=1e-3)
    assert small == pytest.approx(lagrangian_critical_rho(kappa=kappa), abs=2e-3)
    assert lagrangian_discrete_critical_rho(lr=0.05 * kappa, multiplier_lr=0.05) > lagrangian_critical_rho(kappa=kappa)
