"""Differentiable eigendecomposition of a general (non-symmetric, real or complex) square matrix.

`eig(A)` returns (lam, V) with A V = V diag(lam), exactly as `numpy.linalg.eig` computes them
(unit-norm eigenvectors in the columns of V), but always as complex arrays, and registers its
vector-Jacobian product (VJP) with autograd.

Gradient. For A = V diag(lam) V^-1 and a real loss L, Boeddeker et al. 2017, "On the computation
of complex-valued gradients with application to statistically optimum beamforming"
(arXiv:1701.00392), eq. 4.77, give

    grad_A = V^-H [ grad_lam + conj(F) o (V^H grad_V - V^H V (Re(V^H grad_V) o I)) ] V^H,
    F_ij = 1 / (lam_j - lam_i) for i != j,  F_ii = 0,

with o the elementwise product, grad_lam placed on the diagonal, and grad_X = dL/dRe(X) +
i dL/dIm(X). Autograd's cotangents are the complex conjugates of these (autograd's grad of a real
function of z = x + iy is dL/dx - i dL/dy), so the VJP conjugates on the way in and out. For real
A only real perturbations exist, and the cotangent is the real part. The cost is one solve and
three matrix products. The VJP is first order: it is not itself traced by autograd.

Validity. Each eigenvector is defined only up to a complex factor, and the formula assumes the
loss does not care: it is the gradient of *gauge-invariant* functions, those unchanged under
V -> V D for every invertible diagonal D, e.g. anything built from V diag(f(lam)) V^-1, or from
R (M o F) R^H with R = V, M = (R^H R)^-1 and F depending on lam only. For such functions the
diagonal of V^H grad_V vanishes and so does the last term. That term accounts for numpy's unit
normalization, so functions of the unit-norm V that ignore only the phase of each column are
covered too; its Re(...) (as in autograd's own grad_eig) matters only for phase-dependent
functions. Anything that reads the phase of V, which LAPACK fixes by an arbitrary convention,
gets a wrong gradient.

The eigenvalues must also be distinct: F has poles where two of them meet. Gaps are regularized
(see `GAP_EPS`) so the result stays finite, and the VJP warns with `EigGradientWarning` when the
smallest relative gap is below `GAP_WARN`; there the gradient is unreliable and an eig-free route
(e.g. a Lyapunov solve) is the safer one.
"""
import sys
import warnings

import numpy as np
from autograd.extend import defvjp, primitive

GAP_WARN = 1e-8
"""The VJP warns when min_{i != j} |lam_i - lam_j| / max|lam| is below this."""

GAP_EPS = 1e-12
"""Gaps d are inverted as conj(d) / (|d|^2 + (GAP_EPS * max|lam|)^2): equal to 1/d to relative
(GAP_EPS * max|lam| / |d|)^2, i.e. 1e-12 or better for relative gaps of 1e-6 and above."""


class EigGradientWarning(UserWarning):
    """The eigenvalues are (nearly) repeated, so the gradient through `eig` is unreliable."""


@primitive
def eig(A):
    """(w, V) = eigenvalues and right eigenvectors, like numpy.linalg.eig, differentiable by autograd.

    Both are complex arrays, also for real A, so downstream code is uniform. A must be a single
    square matrix (no stacks).
    """
    if np.ndim(A) != 2:
        raise ValueError(f"eig: expected a square matrix, got shape {np.shape(A)}")
    w, V = np.linalg.eig(A)
    return w.astype(complex), V.astype(complex)


def _relative_gap(lam):
    """min_{i != j} |lam_i - lam_j| / max|lam| (inf for a 1 x 1 matrix)."""
    gaps = np.abs(lam[:, None] - lam[None, :]) + np.diag(np.full(len(lam), np.inf))
    return np.min(gaps, initial=np.inf) / max(np.max(np.abs(lam), initial=0.0), np.finfo(float).tiny)


def _reciprocal_gaps(lam):
    """F_ij = 1 / (lam_j - lam_i) off the diagonal, 0 on it, regularized (see `GAP_EPS`)."""
    d = lam[None, :] - lam[:, None]
    scale = np.max(np.abs(lam), initial=0.0) or 1.0  # the zero matrix: all d = 0, any eps > 0 gives F = 0
    return np.conj(d) / (np.abs(d) ** 2 + (GAP_EPS * scale) ** 2)


def _outside_stacklevel():
    """The warnings stacklevel, seen from the caller, of the innermost frame outside autograd and
    this module: the user's call that started the backward pass."""
    frame, level = sys._getframe(1), 1
    while frame is not None:
        module = frame.f_globals.get("__name__", "")
        if module != __name__ and module.partition(".")[0] != "autograd":
            break
        frame, level = frame.f_back, level + 1
    return level


def _eig_vjp(ans, A):
    """Autograd's VJP maker for `eig`: maps the cotangents of (lam, V) to that of A (eq. 4.77)."""
    lam, V = ans

    def vjp(g):
        gap = _relative_gap(lam)
        if gap < GAP_WARN:
            warnings.warn(
                f"eig gradient: relative eigenvalue gap {gap:.1e} < {GAP_WARN:.0e}; the gradient is "
                "unreliable for (nearly) repeated eigenvalues. Prefer an eig-free path (e.g. a "
                "Lyapunov solve) here.",
                EigGradientWarning,
                stacklevel=_outside_stacklevel(),
            )
        grad_lam, grad_V = np.conj(g[0]), np.conj(g[1])  # autograd's convention -> Boeddeker's
        VH = V.conj().T
        VH_grad_V = VH @ grad_V
        inner = np.diag(grad_lam) + np.conj(_reciprocal_gaps(lam)) * (
            VH_grad_V - (VH @ V) * np.real(np.diag(VH_grad_V))
        )
        grad_A = np.linalg.solve(VH, inner @ VH)
        return np.conj(grad_A) if np.iscomplexobj(A) else np.real(grad_A)

    return vjp


defvjp(eig, _eig_vjp)
