"""Differentiable time evolution: fixed-step explicit Runge-Kutta schemes with their exact
discrete adjoint, for a batch of conditions at once.

A dynamics gives its vector field dx/dt = f(x, u; p) as a `VectorField`; `solve(field, params,
x0, t, u)` returns the states x(t_k) of C conditions (initial states x0 (C, N), inputs u (T, C, m)
on the time grid t) as one autograd primitive whose gradient flows to the parameters, x0 and u.

Grid and inputs. Each interval [t_k, t_k+1] of the grid is one step, or ceil((t_k+1 - t_k)/dt)
equal steps when `dt` is given. Inputs are given on the grid and linearly interpolated between
grid points, at the sub-steps and at the stages of a step alike (RK4's half steps read
(u_n + u_n+1)/2).

Schemes (Butcher tableaux `SCHEMES`): "euler" x' = x + h f(x, u_n); "rk4" the classic fourth-order
scheme. A step of an explicit scheme with stages s_i = x + h sum_j<i a_ij k_j, k_i = f(s_i, u(t +
c_i h)) gives x' = x + h sum_i b_i k_i.

Discrete adjoint. The VJP is the gradient of this discrete map, not of the ODE: with lam the
cotangent of x' and, from the last stage to the first, kappa_i = h b_i lam + h sum_j>i a_ji
sigma_j (the cotangent of k_i) and sigma_i = f_x(s_i)^T kappa_i (of s_i), the cotangent of x is
lam + sum_i sigma_i (plus what the loss puts on x itself), that of the stage's input is
f_u(s_i)^T kappa_i, and the parameters collect sum f_p(s_i)^T kappa_i over every stage of every
step. The forward pass keeps one array per stage (what the field's VJPs need: the stage state,
or e.g. a rate network's rates); the backward pass walks the steps once in reverse. Parameter
cotangents are collected in blocks of steps (`BLOCK` stage rows per call of `vjp_params`), so a
rate network's dL/dJ is a few large matrix products instead of one outer product per stage.
Nothing is recorded on autograd's tape per step: time and memory are those of the arrays above.
"""
import math
from dataclasses import dataclass

import autograd.numpy as anp
import numpy as np
from autograd import make_vjp
from autograd.extend import defvjp_argnums, primitive
from autograd.tracer import getval, isbox

from tcnet.validate import ConfigError

BLOCK = 8192
"""Stage rows (steps x stages x conditions) per call of `VectorField.vjp_params` in the backward pass."""


@dataclass(frozen=True)
class Scheme:
    """An explicit Runge-Kutta scheme: a[i] holds the (j, a_ij) with a_ij != 0, j < i."""

    a: tuple
    b: tuple
    c: tuple

    @property
    def stages(self) -> int:
        return len(self.b)


SCHEMES = {
    "euler": Scheme(a=((),), b=(1.0,), c=(0.0,)),
    "rk4": Scheme(a=((), ((0, 0.5),), ((1, 0.5),), ((2, 1.0),)), b=(1 / 6, 1 / 3, 1 / 3, 1 / 6),
                  c=(0.0, 0.5, 0.5, 1.0)),
}
ORDER = {"euler": 1, "rk4": 4}
"""The global order of accuracy of each scheme."""


class VectorField:
    """dx/dt = f(x, u; p) for a batch: x (C, N), u (C, m) or None, params a tuple of arrays (in the
    order `solve` is given them).

    A subclass defines `rhs`, traceable by autograd and batched over the leading axis; the
    integrator then differentiates it per stage with autograd (`vjp_state`) and once per block of
    stages for the parameters (`vjp_params`). A field with analytic Jacobian-vector products
    overrides `step`, `vjp_state` and `vjp_params` (and `rhs` stays its reference)."""

    def rhs(self, x, u, params):
        """f(x, u; p), shape of x; traceable."""
        raise NotImplementedError

    def step(self, x, u, params):
        """(f(x, u; p), cache) in numpy: the cache (an array with x's leading axis) is what the
        VJPs below are given for this stage; by default the stage state x itself."""
        return self.rhs(x, u, params), x

    def vjp_state(self, cache, u, g, params):
        """(f_x^T g, f_u^T g) at the stage whose cache is given (None for u when u is None)."""
        if u is None:
            vjp, _ = make_vjp(lambda x: self.rhs(x, None, params))(cache)
            return vjp(g), None
        vjp, _ = make_vjp(lambda xu: self.rhs(xu[0], xu[1], params))((cache, u))
        return vjp(g)

    def vjp_params(self, caches, us, gs, params):
        """sum over rows of f_p^T g: the cotangent of each parameter from stacked stages (caches,
        inputs us (or None) and cotangents gs, one row per stage and condition)."""
        vjp, _ = make_vjp(lambda p: self.rhs(caches, us, p))(tuple(params))
        return vjp(gs)


@dataclass(frozen=True)
class Forward:
    """A forward pass: states x (steps + 1, C, N) and one cache per stage (steps, stages, C, ...)."""

    x: np.ndarray
    caches: np.ndarray | None


def stage_inputs(u, c):
    """Inputs at the stage times t_n + c h of every step (steps, C, m), linear between grid points."""
    return u[:-1] if c == 0 else u[1:] if c == 1 else (1 - c) * u[:-1] + c * u[1:]


def forward(field: VectorField, params, x0, u, h, scheme: Scheme, keep: bool = True) -> Forward:
    """Integrate in numpy with steps h (steps,) from x0 (C, N); u (steps + 1, C, m) or None;
    `keep` the stage caches for the adjoint."""
    x = np.empty((len(h) + 1,) + x0.shape)
    x[0] = x0
    caches = None
    us = [None if u is None else stage_inputs(u, c) for c in scheme.c]
    for n, hn in enumerate(h):
        ks = []
        for i, row in enumerate(scheme.a):
            s = x[n]
            for j, a in row:
                s = s + (hn * a) * ks[j]
            k, cache = field.step(s, None if u is None else us[i][n], params)
            if keep:
                if caches is None:
                    caches = np.empty((len(h), scheme.stages) + np.shape(cache))
                caches[n, i] = cache
            ks.append(k)
        out = x[n] + (hn * scheme.b[0]) * ks[0]
        for b, k in zip(scheme.b[1:], ks[1:]):
            out += (hn * b) * k
        x[n + 1] = out
    return Forward(x, caches)


def adjoint(field: VectorField, params, fw: Forward, u, h, scheme: Scheme, gx, inputs: bool = True):
    """(dL/dx0, dL/du (None without u or `inputs`), dL/dparams) from the cotangent gx (steps + 1,
    C, N) of the states."""
    steps, stages = len(h), scheme.stages
    lam = np.array(gx[steps], dtype=float)
    gu = np.zeros_like(u) if u is not None and inputs else None
    us = [None if u is None else stage_inputs(u, c) for c in scheme.c]
    later = [[(j, row_j) for j, row in enumerate(scheme.a) for i2, row_j in row if i2 == i] for i in range(stages)]
    rows = lam.shape[0] * stages
    block = max(1, BLOCK // rows)
    kappas = np.empty((min(block, steps), stages) + lam.shape)
    gp = [np.zeros_like(p) for p in params]

    def flush(lo, hi):  # the parameters' cotangent from steps lo..hi-1 (kappas[: hi - lo])
        n = hi - lo
        cache = fw.caches[lo:hi].reshape((n * rows,) + fw.caches.shape[3:])
        kap = kappas[:n].reshape((n * rows,) + lam.shape[1:])
        uu = None if u is None else np.stack([s[lo:hi] for s in us], axis=1).reshape((n * rows,) + u.shape[2:])
        for acc, g in zip(gp, field.vjp_params(cache, uu, kap, params)):
            acc += g

    for hi in range(steps, 0, -block):
        lo = max(0, hi - block)
        for n in range(hi - 1, lo - 1, -1):
            hn = h[n]
            sigma = [None] * stages
            for i in range(stages - 1, -1, -1):
                kap = (hn * scheme.b[i]) * lam
                for j, a in later[i]:
                    kap = kap + (hn * a) * sigma[j]
                kappas[n - lo, i] = kap
                sigma[i], g_u = field.vjp_state(fw.caches[n, i], None if u is None else us[i][n], kap, params)
                if gu is not None:
                    c = scheme.c[i]
                    if c != 1:
                        gu[n] += (1 - c) * g_u
                    if c != 0:
                        gu[n + 1] += c * g_u
            for s in sigma:
                lam += s
            lam += gx[n]
        flush(lo, hi)
    return lam, gu, tuple(gp)


@primitive
def _states(x0, u, *params, fw, field, h, scheme):
    """The states of the forward pass `fw` (computed from these arguments by `solve`)."""
    return fw.x


def _states_vjp(argnums, ans, args, kwargs):
    x0, u, *params = args
    fw, field, h, scheme = (kwargs[k] for k in ("fw", "field", "h", "scheme"))

    def vjp(g):
        gx0, gu, gp = adjoint(field, tuple(params), fw, u, h, scheme, g, inputs=1 in argnums)
        out = (gx0, gu, *gp)
        return tuple(out[i] for i in argnums)

    return vjp


defvjp_argnums(_states, _states_vjp)


def check_grid(t) -> np.ndarray:
    """t as a 1-D float array of at least two strictly increasing finite times."""
    t = np.asarray(t, dtype=float)
    if t.ndim != 1 or t.size < 2 or not np.all(np.isfinite(t)) or not np.all(np.diff(t) > 0):
        raise ConfigError(f"integrate: t must be a 1-D array of at least 2 strictly increasing times, got "
                          f"shape {t.shape}")
    return t


def refine(t, dt=None):
    """(h, index): the steps h of the grid t with every interval split into ceil(interval / dt)
    equal steps, and the index of each grid time among the step boundaries."""
    gaps = np.diff(t)
    if dt is None:
        return gaps, np.arange(len(t))
    counts = np.maximum(1, np.ceil(gaps / dt * (1 - 1e-12)).astype(int))
    h = np.repeat(gaps / counts, counts)
    return h, np.concatenate([[0], np.cumsum(counts)])


def interpolate(u, index):
    """u (T, C, m) on the grid, linearly interpolated at every step boundary (traceable): the
    boundaries between grid points k and k + 1 are at the fractions j / n of the interval."""
    parts = []
    for k in range(len(index) - 1):
        n = index[k + 1] - index[k]
        w = (np.arange(n) / n)[:, None, None]
        parts.append(u[k][None] * (1 - w) + u[k + 1][None] * w)
    parts.append(u[-1][None])
    return anp.concatenate(parts, axis=0)


def solve(field: VectorField, params, x0, t, u=None, scheme: str = "rk4", dt=None):
    """States (len(t), C, N) of dx/dt = f(x, u; params) at the times t from x0 (C, N), with inputs
    u (len(t), C, m) on the grid (or None), by `scheme` ("euler", "rk4") with steps of at most
    `dt` (None: the grid's); differentiable with respect to params (a tuple of arrays), x0 and u
    (module docstring). Where none of them is traced by autograd, it is a plain numpy simulation that
    keeps no stages (`Dynamics.simulate` and `tcnet simulate` run it so)."""
    if scheme not in SCHEMES:
        raise ConfigError(f"integrate: scheme must be one of {', '.join(SCHEMES)}, got {scheme!r}")
    t = check_grid(t)
    if dt is not None and not (isinstance(dt, (int, float)) and math.isfinite(dt) and dt > 0):
        raise ConfigError(f"integrate: dt must be a finite number > 0 or None, got {dt!r}")
    if np.ndim(x0) != 2:
        raise ConfigError(f"integrate: x0 must have shape (conditions, states), got {np.shape(x0)}")
    if u is not None and (np.ndim(u) != 3 or np.shape(u)[:2] != (len(t), np.shape(x0)[0])):
        raise ConfigError(f"integrate: u must have shape (len(t), conditions, inputs) = ({len(t)}, "
                          f"{np.shape(x0)[0]}, m), got {np.shape(u)}")
    h, index = refine(t, dt)
    refined = len(h) != len(t) - 1
    if u is not None and refined:
        u = interpolate(u, index)
    params = tuple(params)
    traced = any(isbox(a) for a in (x0, u, *params))  # else no gradient can be asked for: keep no stages
    fw = forward(field, tuple(getval(p) for p in params), np.asarray(getval(x0), dtype=float),
                 None if u is None else np.asarray(getval(u), dtype=float), h, SCHEMES[scheme], keep=traced)
    x = _states(x0, u, *params, fw=fw, field=field, h=h, scheme=SCHEMES[scheme]) if traced else fw.x
    return x[index] if refined else x

