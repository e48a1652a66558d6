"""Fixed and slow points of any vector field (Sussillo & Barak 2013; Golub & Sussillo 2018).

From each start (typically states along the network's own trajectories) minimize the speed
q(x) = |F(x, u)|^2 / 2 (scipy's BFGS with the exact gradient A^T F, A = F_x, one VJP of the
field), then polish the minimum by Newton (tcnet.steady.newton). A point where Newton converges
is a *fixed point* (F = 0 to rounding); a minimum that is not, with q <= `slow`, is a *slow
point*; other minima are dropped. Points closer than `distinct` (relative to 1 + max |x|) are
one (the fastest kept). Each point is classified by the Jacobian's spectrum: stable when every
eigenvalue's real part is < 0; its unstable directions are the (real parts of the) eigenvectors
of the eigenvalues with positive real part.
"""
from dataclasses import dataclass

import numpy as np
from autograd import make_vjp
from scipy.optimize import minimize

from tcnet.integrate import VectorField
from tcnet.steady import Newton, jacobian
from tcnet.validate import ConfigError

POLISH = Newton(ftol=1e-10)


@dataclass(frozen=True)
class FixedPoints:
    """The points found: x (P, N), q (P,) their speed |F|^2/2, fixed (P,) True for fixed points
    (else slow points), eigenvalues (P, N) of the Jacobian (decreasing real part), vectors (P, N, N)
    its eigenvectors (columns, in the same order)."""

    x: np.ndarray
    q: np.ndarray
    fixed: np.ndarray
    eigenvalues: np.ndarray
    vectors: np.ndarray

    @property
    def stable(self) -> np.ndarray:
        return np.all(self.eigenvalues.real < 0, axis=1) if len(self.x) else np.zeros(0, bool)

    @property
    def unstable(self) -> np.ndarray:
        """The number of unstable directions (eigenvalues with positive real part) of each point."""
        return np.sum(self.eigenvalues.real > 0, axis=1)

    def unstable_directions(self, k: int) -> np.ndarray:
        """The unstable directions of point k (n, N): real parts of its eigenvectors, unit length."""
        v = self.vectors[k][:, self.eigenvalues[k].real > 0].real.T
        return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-300)

    def rows(self) -> list[dict]:
        """One row per point: kind, stability, speed, leading eigenvalue, x entries."""
        return [{"kind": "fixed" if f else "slow", "stable": bool(s), "unstable": int(n), "q": float(q),
                 "max_real_eigenvalue": float(lam[0].real), **{f"x{i}": float(v) for i, v in enumerate(x)}}
                for x, q, f, s, n, lam in zip(self.x, self.q, self.fixed, self.stable, self.unstable, self.eigenvalues)]


def speed(field: VectorField, params, u=None):
    """q(x) = |F|^2/2 and its gradient A^T F, for scipy (x (N,))."""
    params = tuple(params)

    def q_and_grad(x):
        vjp, F = make_vjp(lambda y: field.rhs(y[None], None if u is None else u[None], params)[0])(x)
        F = np.asarray(F)
        return 0.5 * float(F @ F), np.asarray(vjp(F))

    return q_and_grad


def find(field: VectorField, params, starts, u=None, *, slow: float = 1e-6, distinct: float = 1e-6,
         max_iter: int = 500) -> FixedPoints:
    """The distinct fixed and slow points reached from each start (P0, N) (module docstring)."""
    starts = np.asarray(starts, dtype=float)
    if starts.ndim != 2 or not np.all(np.isfinite(starts)):
        raise ConfigError(f"fixed points: starts must be a finite (n, N) array, got shape {starts.shape}")
    q_and_grad = speed(field, params, u)
    found = []
    for x0 in starts:
        res = minimize(q_and_grad, x0, jac=True, method="BFGS",
                       options={"maxiter": max_iter, "gtol": 1e-10})
        x, ok = POLISH(field, params, res.x, u)
        if not ok:
            x = res.x
        q = q_and_grad(x)[0]
        if ok or q <= slow:
            found.append((q, ok, x))
    kept = []
    for q, ok, x in sorted(found, key=lambda item: (not item[1], item[0])):
        if all(np.max(np.abs(x - y)) > distinct * (1.0 + np.max(np.abs(x))) for _, _, y in kept):
            kept.append((q, ok, x))
    N = starts.shape[1]
    if not kept:
        return FixedPoints(np.zeros((0, N)), np.zeros(0), np.zeros(0, bool), np.zeros((0, N), complex),
                           np.zeros((0, N, N), complex))
    spectra = []
    for _, _, x in kept:
        lam, V = np.linalg.eig(jacobian(field, params, x, u))
        order = np.argsort(-lam.real, kind="stable")
        spectra.append((lam[order], V[:, order]))
    return FixedPoints(np.array([x for _, _, x in kept]), np.array([q for q, _, _ in kept]),
                       np.array([ok for _, ok, _ in kept]), np.array([s[0] for s in spectra]),
                       np.array([s[1] for s in spectra]))
