"""Steady states of a vector field: found by Newton's method on the branch a protocol reaches, and
differentiated by the implicit function theorem, for any dynamics that gives its vector field.

A steady state x* solves F(x*, u; p) = 0 for the field F = `VectorField.rhs` of one condition
(x (N,), u (m,) or None, p the parameter tuple). Finding it is not differentiable (which branch,
how many Newton steps); the fixed point as a function of p and u is:

    dx*/dp = -A^-1 F_p,   dx*/du = -A^-1 F_u,   A = F_x(x*)   (the Jacobian, N x N),

so the VJP of a cotangent g on x* is one linear solve with the transposed Jacobian,
w = A^-T g, followed by the field's own VJP: p_bar = -F_p^T w, u_bar = -F_u^T w (`implicit`,
`pullback`). `steady(field, params, x_star, u)` returns x* as an autograd primitive with that
VJP (x_star found beforehand by `newton` or `reach`).

Which steady state. Nonlinear circuits have several (rest, Up, ...); the one a model is in is
decided by a protocol: `reach` simulates it (segments of constant input, scipy's RK45 at tight
tolerance, stopping as a runaway once a state exceeds `r_max`), polishes the end state by
Newton and accepts it when Newton converged close to where the simulation ended and the point
is linearly stable; else the protocol reaches no steady state (NaN). Along a learning run the
branch is followed by Newton from the last steady state (`follow`), and re-decided by the
protocol when Newton fails or lands on an unstable point.

Linearization: `jacobian` (A, by autograd on the field), `spectrum`, `is_stable` (every
eigenvalue's real part < 0), and the steady-state response to inputs `response` = dx*/du.
"""
from dataclasses import dataclass

import numpy as np
from autograd import jacobian as _ad_jacobian, make_vjp
from autograd.extend import defvjp_argnums, primitive
from autograd.tracer import getval, isbox
from scipy.integrate import solve_ivp

from tcnet.integrate import VectorField
from tcnet.validate import ConfigError


def _one(field: VectorField, params, u):
    """F(x) of one condition as a function of x (N,)."""
    return lambda x: field.rhs(x[None], None if u is None else u[None], params)[0]


def residual(field: VectorField, params, x, u=None) -> np.ndarray:
    """F(x, u; p) of one state x (N,), in numpy."""
    return np.asarray(_one(field, tuple(getval(p) for p in params), u)(np.asarray(x, dtype=float)))


def jacobian(field: VectorField, params, x, u=None) -> np.ndarray:
    """A = dF/dx (N x N) at the state x, by autograd on the field (numpy)."""
    params = tuple(getval(p) for p in params)
    return np.asarray(_ad_jacobian(_one(field, params, u))(np.asarray(getval(x), dtype=float)))


def spectrum(field: VectorField, params, x, u=None) -> np.ndarray:
    """The eigenvalues of the Jacobian at x, sorted by decreasing real part."""
    lam = np.linalg.eigvals(jacobian(field, params, x, u))
    return lam[np.argsort(-lam.real, kind="stable")]


def is_stable(field: VectorField, params, x, u=None) -> bool:
    """True where every eigenvalue of the Jacobian at x has a negative real part."""
    return bool(np.all(spectrum(field, params, x, u).real < 0))


def pullback(field: VectorField, params, x, u, w):
    """(F_u^T w (None without u), (F_p^T w for each parameter)) at the state x."""
    x = np.asarray(x, dtype=float)
    if u is None:
        vjp, _ = make_vjp(lambda p: field.rhs(x[None], None, p)[0])(tuple(params))
        return None, vjp(w)
    vjp, _ = make_vjp(lambda up: field.rhs(x[None], up[0][None], up[1])[0])((np.asarray(u, dtype=float),
                                                                          tuple(params)))
    gu, gp = vjp(w)
    return gu, gp


def implicit(field: VectorField, params, x, u, g):
    """(u_bar, p_bar): the cotangents of u and of the parameters of x*(p, u) for the cotangent g
    on x*, by the implicit function theorem at the state x: w = A^-T g, (u_bar, p_bar) =
    -(F_u^T w, F_p^T w). At a state that is not a fixed point (a rate measured in a trial) this
    is the same linear map evaluated there."""
    params = tuple(getval(p) for p in params)
    w = np.linalg.solve(jacobian(field, params, x, u).T, np.asarray(g, dtype=float))
    gu, gp = pullback(field, params, x, u, -w)
    return gu, tuple(gp)


def response(field: VectorField, params, x, u) -> np.ndarray:
    """dx*/du (N x m): the steady state's response to a small constant change of the inputs u,
    -A^-1 F_u at the fixed point x."""
    x, u = np.asarray(x, dtype=float), np.asarray(u, dtype=float)
    params = tuple(getval(p) for p in params)
    F_u = _ad_jacobian(lambda v: field.rhs(x[None], v[None], params)[0])(u)
    return -np.linalg.solve(jacobian(field, params, x, u), F_u)


@primitive
def _fixed(u, *params, x, field):
    """The fixed point x (found from these arguments beforehand)."""
    return x


def _fixed_vjp(argnums, ans, args, kwargs):
    u, *params = args
    x, field = kwargs["x"], kwargs["field"]

    def vjp(g):
        gu, gp = implicit(field, params, x, u, g)
        out = (gu, *gp)
        return tuple(out[i] for i in argnums)

    return vjp


defvjp_argnums(_fixed, _fixed_vjp)


def steady(field: VectorField, params, x_star, u=None):
    """The fixed point x_star (N,) of the field as a function of params and u, differentiable by
    the implicit function theorem (module docstring); x_star itself where nothing is traced."""
    x_star = np.asarray(getval(x_star), dtype=float)
    params = tuple(params)
    if not any(isbox(a) for a in (u, *params)):
        return x_star
    return _fixed(u, *params, x=x_star, field=field)


@dataclass(frozen=True)
class Newton:
    """Newton's method with backtracking on |F|: stops once the step is below tol (relative to
    1 + max |x|) and |F| below `ftol` times the same scale, or after max_iter steps."""

    tol: float = 1e-13
    ftol: float = 1e-9
    max_iter: int = 60

    def __call__(self, field: VectorField, params, x0, u=None) -> tuple[np.ndarray, bool]:
        """(x, converged) from the start x0."""
        params = tuple(getval(p) for p in params)
        x = np.array(x0, dtype=float)
        F = residual(field, params, x, u)
        for _ in range(self.max_iter):
            if not np.all(np.isfinite(F)):
                return x, False
            A = jacobian(field, params, x, u)
            try:
                dx = np.linalg.solve(A, -F)
            except np.linalg.LinAlgError:
                return x, False
            step, norm = 1.0, np.linalg.norm(F)
            while True:
                x_new = x + step * dx
                F_new = residual(field, params, x_new, u)
                if np.linalg.norm(F_new) < norm or step < 1e-6:
                    break
                step /= 2
            x, F = x_new, F_new
            scale = 1.0 + np.max(np.abs(x))
            if np.max(np.abs(step * dx)) <= self.tol * scale and np.max(np.abs(F)) <= self.ftol * scale:
                return x, True
            if np.max(np.abs(step * dx)) <= 1e-3 * self.tol * scale:  # no progress
                break
        scale = 1.0 + np.max(np.abs(x))
        return x, bool(np.all(np.isfinite(F)) and np.max(np.abs(F)) <= self.ftol * scale)


newton = Newton()


@dataclass(frozen=True)
class Protocol:
    """How a steady state is reached: from `start`, each segment (duration, du) simulated in turn
    with the constant input u + du (du (m,) a kick, or None: u itself); a state above `r_max`
    (any entry, in absolute value) is a runaway. The end state counts as settled when Newton from it converges within
    `settled` (relative to 1 + max |x*|) of it."""

    start: tuple
    segments: tuple
    r_max: float = 1e4
    settled: float = 1e-3

    def __post_init__(self):
        if not self.segments or any(d <= 0 for d, _ in self.segments):
            raise ConfigError("steady: a protocol needs segments of positive duration")

    def simulate(self, field: VectorField, params, u=None) -> np.ndarray:
        """The end state of the protocol around the constant input u (NaN after a runaway), by
        scipy's LSODA (stiff steps once the rates settle); the last segment ends early once
        |F| <= 1e-10 (1 + max |x|), at rest."""
        params = tuple(getval(p) for p in params)
        y, t0 = np.array(self.start, dtype=float), 0.0

        def runaway(_, x):
            return self.r_max - np.max(np.abs(x))

        runaway.terminal = True
        for k, (duration, du) in enumerate(self.segments):
            v = u if du is None else np.asarray(du, dtype=float) + (0.0 if u is None else np.asarray(u, dtype=float))
            f = _one(field, params, v)

            def rhs(_, x):
                return np.asarray(f(x))

            def settled(_, x):
                return np.max(np.abs(rhs(_, x))) - 1e-10 * (1.0 + np.max(np.abs(x)))

            settled.terminal = True
            events = [runaway, settled] if k == len(self.segments) - 1 else [runaway]
            sol = solve_ivp(rhs, (t0, t0 + duration), y, method="LSODA", rtol=1e-8, atol=1e-10, events=events)
            if sol.status == -1 or (sol.status == 1 and len(sol.t_events[0])):
                return np.full_like(y, np.nan)
            y, t0 = sol.y[:, -1], t0 + duration
        return y


def reach(field: VectorField, params, protocol: Protocol, u=None) -> np.ndarray:
    """The stable steady state (with constant input u) the protocol ends at, polished by Newton;
    NaN where it runs away, keeps moving or ends elsewhere than at a stable fixed point."""
    end = protocol.simulate(field, params, u)
    if not np.all(np.isfinite(end)):
        return end
    x, ok = newton(field, params, end, u)
    close = np.max(np.abs(x - end)) <= protocol.settled * (1.0 + np.max(np.abs(x)))
    if ok and close and is_stable(field, params, x, u):
        return x
    return np.full_like(end, np.nan)


def follow(field: VectorField, params, previous, protocol: Protocol, u=None) -> np.ndarray:
    """The steady state on the branch of `previous` (Newton from it, kept where it converges to a
    stable point), else the one the protocol reaches (`reach`)."""
    if previous is not None and np.all(np.isfinite(previous)):
        x, ok = newton(field, params, previous, u)
        if ok and is_stable(field, params, x, u):
            return x
    return reach(field, params, protocol, u)
