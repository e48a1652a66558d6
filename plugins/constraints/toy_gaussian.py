"""The slides' toy problem: an oriented 2-D Gaussian well with an equality constraint.

Objective (loss `toy_objective`), for x in R^2 and a symmetric positive-definite C:

    f(x) = -exp(-q(x)),   q(x) = (x - u)^T C (x - u)       (slides: u = (1, 1.5), C = [[1, .7], [.7, 1]])

Constraint (loss `toy_constraint`, an `Equality`): x_i = t, residual g = x_i - t, loss value
(x_i - t)^2 (slides: i = 1, i.e. x2, and t = 3).

Exact constrained optimum. Let j be the other coordinate, D = t - u_i and s = C_ii - C_ij^2 / C_jj
(the Schur complement, > 0 for C positive definite). With x_i = t, minimizing f means minimizing q
over x_j: dq/dx_j = 2 (C_jj (x_j - u_j) + C_ji D) = 0, so

    x_j* = u_j - C_ji (t - u_i) / C_jj,     q* = s D^2,     lambda* = -df/dx_i(x*) = -2 s D exp(-s D^2),

lambda* being the Lagrange multiplier of L = f + lambda g. Slides: x* = (-0.05, 3), q* = 1.1475.

Bias of the alternating scheme (SGD lr a on f over all of x, then SGD lr b on (x_i - t)^2 over x_i
only; see `tcnet_plugins.constraints.Alternating`). At a fixed point the x_j update vanishes, so
df/dx_j = 0, i.e. x lies on the line x_j = u_j - C_ji d / C_jj with d = x_i - u_i, where
q = s d^2 and df/dx_i = 2 s d exp(-s d^2). The x_i update y = x_i - a df/dx_i, then
x_i <- y - 2 b (y - t), returns to x_i when 2 b (t - x_i) = a (1 - 2 b) df/dx_i, that is

    b (D - d) = a (1 - 2 b) s d exp(-s d^2).

For 0 < b < 1/2 and small a the left side falls from b D to 0 and the right side rises from 0 as d
goes from 0 to D, so there is a root in (0, D): the scheme stops short of the constraint by
t - x_i ~ a (1 - 2 b) |lambda*| / (2 b) (slides: about 0.007).

Local stability of the Lagrangian method (`tcnet_plugins.constraints.Lagrangian`, rates lr on x
and eta on lambda, augmented term rho). Near (x*, lambda*) its small-step limit is the linear flow
x' = -lr ((H + rho e e^T) dx + e dlambda), lambda' = eta e^T dx, with e = e_i and H the Hessian of f
at x*: H = 2 exp(-q*) (C - 2 C d d^T C), d = x* - u. Its characteristic polynomial is
s^3 + lr T s^2 + (lr eta + lr^2 Delta) s + lr^2 eta H_jj with T = tr(H) + rho and
Delta = H_jj (H_ii + rho) - H_ij^2. By Routh-Hurwitz (H_jj > 0 since x* minimizes f on the line)
the optimum is stable iff T > 0 and T (1 + kappa Delta) > H_jj, kappa = lr/eta. The boundary is the
larger root of kappa H_jj rho^2 + (B + kappa H_jj A) rho + (A B - H_jj) = 0, A = tr(H),
B = 1 + kappa det(H). On the slides' toy H is indefinite (f is concave along x2 at x*) and the
basic method (rho = 0) is unstable there: it needs rho > 0.2071 (kappa = 1) in this limit.

At finite steps the method is the map z <- z + (-lr grad_x L, eta g) on z = (x, lambda), whose
Jacobian at (x*, lambda*) is [[I - lr (H + rho e e^T), -lr e], [eta e^T, 1]]; x* is stable iff its
spectral radius is < 1. At the rates actually used, lr = eta = 0.05, that needs rho > 0.2526
(`lagrangian_discrete_critical_rho`): rho = 0.23 satisfies the small-step bound and still drifts
away, growing by the radius 1.00054 per step. As lr, eta -> 0 at fixed kappa the discrete threshold
tends to the continuous one.

The network holds k independent copies of the problem (x has shape (k, 2); the objective is the
sum over copies, the constraint residual has one entry per copy), so one run of a generic method
on k starting points is k independent runs at once: the basin map uses this.
"""
import functools

import autograd.numpy as anp
import numpy as np
import scipy.optimize

from tcnet import ConfigError, Dynamics, Loss, State
from tcnet.settings import Array, Integer, Real, Settings
from tcnet.validate import array, integer, real
from tcnet_plugins.constraints.methods import Equality

SLIDES_U = (1.0, 1.5)
SLIDES_C = ((1.0, 0.7), (0.7, 1.0))
SLIDES_START = (2.0, 1.0)


def check_gaussian(owner, u, C) -> tuple[np.ndarray, np.ndarray]:
    """u in R^2 and C a symmetric positive-definite 2x2 matrix, as arrays."""
    u = array(owner, "u", u, shape=(2,)).astype(float)
    C = array(owner, "C", C, shape=(2, 2)).astype(float)
    if not np.allclose(C, C.T, rtol=0, atol=1e-12):
        raise ConfigError(f"{owner}: C must be symmetric, got {C.tolist()}")
    eigenvalues = np.linalg.eigvalsh(C)
    if eigenvalues.min() <= 0:
        raise ConfigError(f"{owner}: C must be positive definite, got eigenvalues {eigenvalues.tolist()}")
    return u, C


def _check_constraint(owner, target, index):
    return real(owner, "target", target), integer(owner, "index", index, low=0, high=1)


def constrained_optimum(u=SLIDES_U, C=SLIDES_C, target=3.0, index=1) -> tuple[np.ndarray, float]:
    """The minimizer of f subject to x_index = target, and its Lagrange multiplier (closed form)."""
    u, C = check_gaussian("constrained_optimum", u, C)
    t, i = _check_constraint("constrained_optimum", target, index)
    j = 1 - i
    x = np.empty(2)
    x[i] = t
    x[j] = u[j] - C[j, i] * (t - u[i]) / C[j, j]
    s, D = C[i, i] - C[i, j] ** 2 / C[j, j], t - u[i]
    return x, float(-2 * s * D * np.exp(-s * D * D))


def alternating_fixed_point(lr=0.01, constraint_lr=0.2, u=SLIDES_U, C=SLIDES_C, target=3.0, index=1) -> np.ndarray:
    """The point where the alternating scheme's two updates cancel (module docstring): the root d
    in (0, D) of b (D - d) = a (1 - 2b) s d exp(-s d^2), found by bracketing; needs b < 1/2."""
    u, C = check_gaussian("alternating_fixed_point", u, C)
    t, i = _check_constraint("alternating_fixed_point", target, index)
    a, b = real("alternating_fixed_point", "lr", lr, low=0, low_open=True), constraint_lr
    real("alternating_fixed_point", "constraint_lr", b, low=0, high=0.5, low_open=True, high_open=True)
    j = 1 - i
    s, D = C[i, i] - C[i, j] ** 2 / C[j, j], t - u[i]
    if D == 0:
        return np.array(u)
    d = scipy.optimize.brentq(lambda d: b * (D - d) - a * (1 - 2 * b) * s * d * np.exp(-s * d * d),
                              0.0, D, xtol=1e-15, rtol=1e-15)
    x = np.empty(2)
    x[i] = u[i] + d
    x[j] = u[j] - C[j, i] * d / C[j, j]
    return x


def lagrangian_critical_rho(kappa=1.0, u=SLIDES_U, C=SLIDES_C, target=3.0, index=1) -> float:
    """The smallest augmentation rho for which the constrained optimum is a stable point of the
    Lagrangian method in the small-step limit, kappa = lr / multiplier_lr (module docstring);
    0 if the basic method (rho = 0) is already stable."""
    u, C = check_gaussian("lagrangian_critical_rho", u, C)
    kappa = real("lagrangian_critical_rho", "kappa", kappa, low=0, low_open=True)
    H, j = _hessian_at_optimum(u, C, target, index), 1 - index
    A, B, h = np.trace(H), 1 + kappa * np.linalg.det(H), H[j, j]
    if A > 0 and A * B > h:
        return 0.0
    roots = np.roots([kappa * h, B + kappa * h * A, A * B - h])
    return float(max(0.0, roots.real.max()))


def _hessian_at_optimum(u, C, target, index) -> np.ndarray:
    """H = 2 exp(-q*) (C - 2 C d d^T C), d = x* - u: the Hessian of f at the constrained optimum."""
    x, _ = constrained_optimum(u, C, target, index)
    d = x - u
    return 2 * np.exp(-d @ C @ d) * (C - 2 * np.outer(C @ d, C @ d))


def lagrangian_step_jacobian(rho, lr=0.05, multiplier_lr=0.05, u=SLIDES_U, C=SLIDES_C, target=3.0,
                             index=1) -> np.ndarray:
    """The Jacobian of one step of the Lagrangian method, (x, lambda) -> (x - lr grad_x L,
    lambda + multiplier_lr g(x)), at its fixed point (x*, lambda*) (module docstring):
    [[I - lr (H + rho e e^T), -lr e], [multiplier_lr e^T, 1]]."""
    u, C = check_gaussian("lagrangian_step_jacobian", u, C)
    e = np.eye(2)[index]
    J = np.eye(3)
    J[:2, :2] -= lr * (_hessian_at_optimum(u, C, target, index) + rho * np.outer(e, e))
    J[:2, 2], J[2, :2] = -lr * e, multiplier_lr * e
    return J


def lagrangian_discrete_critical_rho(lr=0.05, multiplier_lr=0.05, u=SLIDES_U, C=SLIDES_C, target=3.0,
                                     index=1) -> float:
    """The smallest rho for which the Lagrangian method with these step sizes is locally stable at
    the constrained optimum: where the spectral radius of `lagrangian_step_jacobian` falls below 1
    (0 if it already is at rho = 0). Tends to `lagrangian_critical_rho(lr / multiplier_lr)` as the
    steps shrink; at the slides' rates lr = multiplier_lr = 0.05 it is 0.2526, not the 0.2071 of
    the small-step limit. Found on a log-spaced grid of rho in [1e-3, 2 / lr] (beyond 2 / lr the
    term lr rho alone destabilizes the x update), refined by bisection."""
    lr = real("lagrangian_discrete_critical_rho", "lr", lr, low=0, low_open=True)
    eta = real("lagrangian_discrete_critical_rho", "multiplier_lr", multiplier_lr, low=0, low_open=True)

    def excess(rho):
        return np.abs(np.linalg.eigvals(lagrangian_step_jacobian(rho, lr, eta, u, C, target, index))).max() - 1

    grid = np.concatenate([[0.0], np.geomspace(1e-3, 2 / lr, 600)])
    stable = np.flatnonzero([excess(rho) < 0 for rho in grid])
    if stable.size == 0:
        raise ConfigError(f"lagrangian_discrete_critical_rho: no rho in [0, {2 / lr:g}] makes the iteration "
                          f"stable at lr = {lr:g}, multiplier_lr = {eta:g}")
    k = stable[0]
    return 0.0 if k == 0 else float(scipy.optimize.brentq(excess, grid[k - 1], grid[k], xtol=1e-14))


def slides_methods(index=1) -> dict:
    """Optimizer specs of the methods as run on the toy (the slides' rates for alternating: SGD 0.01
    on everything, then SGD 0.2 on the constrained coordinate, 1000 iterations; the Lagrangian
    augmented with rho = 1, above the critical 0.2526 of these rates (0.2071 in the small-step
    limit), and without augmentation as `lagrangian_basic`)."""
    return {
        "alternating": {"name": "alternating", "constraint": "constraint", "steps": 1000, "lr": 0.01,
                        "constraint_lr": 0.2, "subset": [f"x[:, {index}]"]},
        "lagrangian": {"name": "lagrangian", "constraint": "constraint", "steps": 20000, "lr": 0.05,
                       "multiplier_lr": 0.05, "rho": 1.0, "tol": 1e-9},
        "lagrangian_basic": {"name": "lagrangian", "constraint": "constraint", "steps": 20000, "lr": 0.05,
                             "multiplier_lr": 0.05, "rho": 0.0, "tol": 1e-9},
        "penalty": {"name": "penalty", "constraint": "constraint", "steps": 3000, "lr": 0.01, "mu": 1.0,
                    "mu_factor": 2.0, "mu_every": 100, "mu_max": 50.0},
    }


def toy_spec(method: dict, start=SLIDES_START, u=SLIDES_U, C=SLIDES_C, target=3.0, index=1) -> dict:
    """A run spec: the toy from `start` (a point or a (k, 2) list of points) under `method`."""
    return {"dynamics": {"name": "toy_gaussian", "start": np.asarray(start, dtype=float).tolist(),
                         "u": list(u), "C": [list(r) for r in C]},
            "loss": [{"name": "toy_objective", "label": "objective"},
                     {"name": "toy_constraint", "label": "constraint", "target": target, "index": index}],
            "optimizer": dict(method)}


class ToyState(State):
    @functools.cached_property
    def x(self):
        """The points, shape (k, 2)."""
        return self.params["x"]

    @functools.cached_property
    def q(self):
        """(x - u)^T C (x - u) per point, shape (k,)."""
        d = self.x - self.dynamics.u
        return anp.sum(anp.dot(d, self.dynamics.C) * d, axis=1)

    @functools.cached_property
    def f(self):
        """-exp(-q) per point, shape (k,)."""
        return -anp.exp(-self.q)


class ToyGaussian(Dynamics):
    """k independent points x in R^2 (array x, shape (k, 2)) in the well f = -exp(-(x-u)^T C (x-u)).
    Config: u (2,), C (2, 2) symmetric positive definite. `create(start=...)` places the points
    (default: the slides' start (2, 1)); the seed is not used (nothing is random)."""

    name = "toy_gaussian"
    trainable = ("x",)
    SETTINGS = Settings(
        Array("u", list(SLIDES_U), "centre of the well", shape=(2,)),
        Array("C", [list(r) for r in SLIDES_C], "precision matrix of the well (symmetric positive definite)",
              shape=(2, 2)),
        Array("start", list(SLIDES_START), "the starting point(s), (2,) or (k, 2)", stored=False),
    )

    @classmethod
    def relate(cls, settings):
        check_gaussian(cls.name, settings["u"], settings["C"])

    @classmethod
    def build(cls, seed, start, u, C):
        x = np.atleast_2d(array(cls.name, "start", start))
        return cls({"x": x}, {"u": np.asarray(u, float).tolist(), "C": np.asarray(C, float).tolist()}, seed)

    @functools.cached_property
    def u(self) -> np.ndarray:
        return np.asarray(self.config["u"], dtype=float)

    @functools.cached_property
    def C(self) -> np.ndarray:
        return np.asarray(self.config["C"], dtype=float)

    def check(self):
        self.relate(self.config)
        array(self.name, "x", self.arrays["x"], shape=(None, 2))
        if self.arrays["x"].shape[0] < 1:
            raise ConfigError(f"{self.name}: x must hold at least one point, got shape {self.arrays['x'].shape}")

    def make_state(self, params):
        return ToyState(self, params)

    def summary(self):
        state = self.state()
        return {"points": float(self.arrays["x"].shape[0]), "objective": float(np.sum(state.f))}


class ToyObjective(Loss):
    """f summed over the points."""

    name = "toy_objective"

    def __call__(self, state):
        return anp.sum(state.f)


class ToyConstraint(Equality):
    """x[:, index] = target per point: residual x[:, index] - target, loss value sum (x_index - target)^2."""

    name = "toy_constraint"
    SETTINGS = Settings(Real("target", 3.0, "the value x_index must take"),
                        Integer("index", 1, "which coordinate of each point is constrained", low=0, high=1))

    def residual(self, state):
        return state.x[:, self.config["index"]] - self.config["target"]
