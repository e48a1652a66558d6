"""Autograd primitives of dense linear algebra, each next to its vector-Jacobian product (VJP):
`eig` (eigendecomposition of a general square matrix), `sylvester` and `lyapunov` (eig-free
solves through one real Schur factorization, `RealSchur`); and the block structure of real Schur
and real eigen forms that fused value-and-gradient code builds on (`schur_blocks`,
`block_invariant_bases`, `BlockDiagonalLyapunov`).

Eigendecomposition. `eig(A)` returns (lam, V) with A V = V diag(lam), exactly as `numpy.linalg.eig` computes them
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
A only real perturbations exist, and the cotangent is the real part. The VJP is first order: it
is not itself traced by autograd.

Cost. For complex A: one complex solve and three complex matrix products. For real A (the usual
case) the VJP works in real arithmetic: LAPACK returns a complex pair's eigenvectors as x, conj(x)
at adjacent positions, so V = W B with W real (Re x, Im x in place of x, conj(x)) and B block
diagonal (the 2 x 2 block [[1, 1], [i, -i]] on a pair, 1 elsewhere). Then V^H grad_V =
B^H (W^T grad_V), V^H V = B^H (W^T W) B and grad_A = W^-T Re(B^-H inner B^H) W^T, where the
products with B cost O(N^2): one real solve and at most three real products (W^T with the real
and imaginary parts of grad_V as one, W^T W, and the last), about a third of the complex
arithmetic. A loss that reads only the eigenvalues (grad_V = 0) costs one product and one solve.

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
import scipy.linalg
from autograd.extend import defvjp, defvjp_argnums, primitive
from autograd.tracer import getval
from scipy.linalg import blas, lapack

GAP_WARN = 1e-8
"""The VJP warns when min_{i != j} |lam_i - lam_j| / max|lam| is below this."""

GAP_EPS = 1e-12
"""Gaps d are inverted as conj(d) / (|d|^2 + (GAP_EPS * max|lam|)^2): equal to 1/d to relative
(GAP_EPS * max|lam| / |d|)^2, i.e. 1e-12 or better for relative gaps of 1e-6 and above."""


class EigGradientWarning(UserWarning):
    """The eigenvalues are (nearly) repeated, so the gradient through `eig` is unreliable."""


@primitive
def eig(A, real_form=None):
    """(w, V) = eigenvalues and right eigenvectors, like numpy.linalg.eig, differentiable by autograd.

    Both are complex arrays, also for real A, so downstream code is uniform. A must be a single
    square matrix (no stacks). `real_form` = real_eig(A), where the caller has it, gives them
    without a second decomposition (`complex_eig`).
    """
    if np.ndim(A) != 2:
        raise ValueError(f"eig: expected a square matrix, got shape {np.shape(A)}")
    if real_form is not None:
        return complex_eig(*real_form)
    w, V = np.linalg.eig(A)
    return w.astype(complex, copy=False), V.astype(complex, copy=False)


def real_eig(A):
    """(wr, wi, vr): the eigendecomposition of a real square A in LAPACK's real form (dgeev, the
    routine numpy.linalg.eig calls, with the optimal workspace): eigenvalues wr + i wi, a complex
    pair as two adjacent entries (wi > 0 first), whose unit-norm eigenvector x = u + iv sits in vr
    as the columns u, v; a real eigenvalue's eigenvector is its column. Code that works in a real
    eigenbasis (the fused preparatory backend) reads it as it is, without numpy's complex copy of
    the eigenvectors; `complex_eig` turns it into numpy's (lam, V)."""
    A = np.asarray(A, dtype=float)
    if A.ndim != 2 or A.shape[0] != A.shape[1]:
        raise ValueError(f"real_eig: expected a square matrix, got shape {A.shape}")
    if not np.isfinite(A).all():
        raise np.linalg.LinAlgError("Array must not contain infs or NaNs")
    N = len(A)
    if N == 0:
        return np.zeros(0), np.zeros(0), np.zeros((0, 0))
    work, info = lapack.dgeev_lwork(N, compute_vl=0, compute_vr=1)
    wr, wi, _, vr, info = lapack.dgeev(A, compute_vl=0, compute_vr=1, lwork=int(work.real))
    if info > 0:
        raise np.linalg.LinAlgError("Eigenvalues did not converge")
    return wr, wi, vr


def complex_eig(wr, wi, vr):
    """(lam, V) of `real_eig`'s (wr, wi, vr), as numpy.linalg.eig returns them (complex arrays)."""
    lam = wr + 1j * wi
    V = vr.astype(complex)
    p = np.flatnonzero(wi > 0)
    V[:, p] += 1j * vr[:, p + 1]
    V[:, p + 1] = np.conj(V[:, p])
    return lam, V


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


def _eig_vjp(ans, A, real_form=None):
    """Autograd's VJP maker for `eig`: maps the cotangents of (lam, V) to that of A (eq. 4.77)."""
    lam, V = ans  # autograd calls this at every forward evaluation: all work goes in vjp

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
        pairs = _conjugate_pairs(lam, V) if np.isrealobj(A) else None
        if pairs is not None:
            return _real_eig_vjp(lam, V, pairs, grad_lam, grad_V)
        VH = V.conj().T
        VH_grad_V = VH @ grad_V
        inner = np.diag(grad_lam) + np.conj(_reciprocal_gaps(lam)) * (
            VH_grad_V - (VH @ V) * np.real(np.diag(VH_grad_V))
        )
        grad_A = np.linalg.solve(VH, inner @ VH)
        return np.conj(grad_A) if np.iscomplexobj(A) else np.real(grad_A)

    return vjp


def _conjugate_pairs(lam, V):
    """Positions p of the first member of each complex pair (lam[p + 1] = conj(lam[p]), V likewise),
    as LAPACK returns them for a real matrix; None if the spectrum is not laid out so."""
    p = np.flatnonzero(lam.imag > 0)
    if np.count_nonzero(lam.imag) != 2 * len(p) or np.any(p + 1 >= len(lam)):
        return None
    if not (np.array_equal(lam[p + 1], np.conj(lam[p])) and np.array_equal(V[:, p + 1], np.conj(V[:, p]))):
        return None
    return p


def _real_eig_vjp(lam, V, p, grad_lam, grad_V):
    """Eq. 4.77 for real A in the real basis W (V = W B, see the module docstring)."""
    q = p + 1
    W = V.real.copy()
    W[:, q] = V[:, p].imag
    inner = np.diag(grad_lam).astype(complex)
    if np.any(grad_V):
        WT_grad_V = W.T @ np.hstack([grad_V.real, grad_V.imag])  # one real product for both parts
        VH_grad_V = _left_BH(WT_grad_V[:, : len(lam)] + 1j * WT_grad_V[:, len(lam) :], p, q)
        d = np.real(np.diag(VH_grad_V))
        VH_V = _right_B(_left_BH((W.T @ W).astype(complex), p, q), p, q)
        inner += np.conj(_reciprocal_gaps(lam)) * (VH_grad_V - VH_V * d)
    # grad_A = W^-T Re(B^-H inner B^H) W^T, with B^-H = B / 2 on each pair (rows p, q)
    S = _right_BH(_left_B(inner, p, q), p, q)
    S[p] /= 2
    S[q] /= 2
    return np.linalg.solve(W.T, np.real(S) @ W.T)


def _left_BH(X, p, q):
    """B^H X: rows p, q become X_p - i X_q and X_p + i X_q."""
    X[p], X[q] = X[p] - 1j * X[q], X[p] + 1j * X[q]
    return X


def _right_B(X, p, q):
    """X B: columns p, q become X_p + i X_q and X_p - i X_q."""
    X[:, p], X[:, q] = X[:, p] + 1j * X[:, q], X[:, p] - 1j * X[:, q]
    return X


def _left_B(X, p, q):
    """B X: rows p, q become X_p + X_q and i (X_p - X_q)."""
    X[p], X[q] = X[p] + X[q], 1j * (X[p] - X[q])
    return X


def _right_BH(X, p, q):
    """X B^H: columns p, q become X_p + X_q and i (X_q - X_p)."""
    X[:, p], X[:, q] = X[:, p] + X[:, q], 1j * (X[:, q] - X[:, p])
    return X


defvjp(eig, _eig_vjp)


# --- Sylvester and Lyapunov equations ------------------------------------------------------------
#
# sylvester(A, B, C) = X with A X + X B = C, and lyapunov(A, Q) = X with A X + X A^T = Q (scipy's
# solve_sylvester / solve_continuous_lyapunov conventions), for real matrices. The solution
# exists and is unique when no eigenvalue of A is the negative of one of B (of A itself for the
# Lyapunov equation); where that fails to working precision the result is NaN.
#
# Gradient (the adjoint method; no eigenvectors, so it stays accurate where eigenvalues nearly
# coincide, unlike anything built on `eig`). Differentiating A X + X B = C gives
# A dX + dX B = dC - dA X - X dB. For a scalar loss with cotangent G = dL/dX, let Y solve the
# adjoint equation A^T Y + Y B^T = G; then <G, dX> = <Y, dC - dA X - X dB>, so
#
#     grad_C = Y,   grad_A = -Y X^T,   grad_B = -X^T Y.
#
# For the Lyapunov equation B = A^T, and the adjoint is A^T Y + Y A = G:
# grad_Q = Y, grad_A = -(Y X^T + Y^T X) (= -2 Y X when G and Q are symmetric). Forward and
# adjoint solves share one real Schur factorization per matrix, so a value and its gradient cost
# two triangular solves and a few matrix products on top of it.


class RealSchur:
    """The real Schur factorization A = Z T Z^T of a real square matrix (scipy.linalg.schur,
    LAPACK dgees): Z orthogonal, T quasi-upper-triangular (1 x 1 blocks for real eigenvalues,
    2 x 2 blocks for complex pairs). Computed once, it serves every Lyapunov solve with A or A^T.

    The O(N^3) products use scipy's BLAS (scipy.linalg.blas.dgemm), the library that runs the
    Schur factorization and dtrsyl: numpy and scipy wheels each bundle their own OpenBLAS, and
    alternating between the two thread pools made each call up to 2x slower on two cores.
    """

    def __init__(self, A):
        A = np.asarray(A)
        if A.ndim != 2 or A.shape[0] != A.shape[1] or not np.isrealobj(A):
            raise ValueError(f"RealSchur: expected a real square matrix, got {A.dtype} of shape {A.shape}")
        self.T, self.Z = scipy.linalg.schur(A, output="real")

    def to_schur(self, C):
        """Z^T C Z: C in the Schur basis."""
        return blas.dgemm(1.0, self.Z, blas.dgemm(1.0, C, self.Z), trans_a=True)

    def from_schur(self, Ct):
        """Z Ct Z^T: back from the Schur basis."""
        return blas.dgemm(1.0, blas.dgemm(1.0, self.Z, Ct), self.Z, trans_b=True)

    def lyapunov_schur(self, Ct, transpose=False):
        """Xt with T Xt + Xt T^T = Ct (transpose: T^T Xt + Xt T = Ct), i.e. the Lyapunov equation
        of A (of A^T) in the Schur basis; NaN where it is singular to working precision."""
        X = triangular_sylvester(self.T, self.T, Ct, "T" if transpose else "N", "N" if transpose else "T")
        return np.full(np.shape(Ct), np.nan) if X is None else X

    def lyapunov(self, C, transpose=False):
        """X with A X + X A^T = C (transpose: A^T X + X A = C)."""
        return self.from_schur(self.lyapunov_schur(self.to_schur(C), transpose))


def _real_square(name, M):
    if np.ndim(M) != 2 or np.shape(M)[0] != np.shape(M)[1] or np.iscomplexobj(M):
        raise ValueError(f"{name}: expected a real square matrix, got shape {np.shape(M)}")


def sylvester(A, B, C):
    """X with A X + X B = C (real A: m x m, B: n x n, C: m x n), differentiable in A, B and C."""
    Av, Bv, Cv = getval(A), getval(B), getval(C)
    _real_square("sylvester: A", Av)
    _real_square("sylvester: B", Bv)
    if np.shape(Cv) != (len(Av), len(Bv)) or np.iscomplexobj(Cv):
        raise ValueError(f"sylvester: expected a real C of shape {(len(Av), len(Bv))}, got {np.shape(Cv)}")
    return _sylvester(A, B, C, RealSchur(Av), RealSchur(Bv))


@primitive
def _sylvester(A, B, C, schur_A, schur_B):
    Ct = blas.dgemm(1.0, schur_A.Z, blas.dgemm(1.0, C, schur_B.Z), trans_a=True)
    Xt = triangular_sylvester(schur_A.T, schur_B.T, Ct, "N", "N")
    if Xt is None:
        return np.full(np.shape(C), np.nan)
    return blas.dgemm(1.0, blas.dgemm(1.0, schur_A.Z, Xt), schur_B.Z, trans_b=True)


def _sylvester_vjp(argnums, X, args, kwargs):
    _, _, _, schur_A, schur_B = args

    def vjp(G):
        Gt = blas.dgemm(1.0, schur_A.Z, blas.dgemm(1.0, G, schur_B.Z), trans_a=True)
        Yt = triangular_sylvester(schur_A.T, schur_B.T, Gt, "T", "T")  # A^T Y + Y B^T = G
        Y = (np.full(np.shape(G), np.nan) if Yt is None
             else blas.dgemm(1.0, blas.dgemm(1.0, schur_A.Z, Yt), schur_B.Z, trans_b=True))
        grads = {0: lambda: -blas.dgemm(1.0, Y, X, trans_b=True), 1: lambda: -blas.dgemm(1.0, X, Y, trans_a=True),
                 2: lambda: Y}
        return tuple(grads[i]() for i in argnums)

    return vjp


defvjp_argnums(_sylvester, _sylvester_vjp)


def lyapunov(A, Q):
    """X with A X + X A^T = Q (real A, Q: N x N), differentiable in A and Q. For stable A and
    Q = -I, X = int_0^inf exp(A t) exp(A t)^T dt, the Gramian of dx/dt = A x."""
    Av, Qv = getval(A), getval(Q)
    _real_square("lyapunov: A", Av)
    if np.shape(Qv) != np.shape(Av) or np.iscomplexobj(Qv):
        raise ValueError(f"lyapunov: expected a real Q of shape {np.shape(Av)}, got {np.shape(Qv)}")
    return _lyapunov(A, Q, RealSchur(Av))


@primitive
def _lyapunov(A, Q, schur):
    return schur.lyapunov(Q)


def _lyapunov_vjp(argnums, X, args, kwargs):
    schur = args[2]

    def vjp(G):
        Y = schur.lyapunov(G, transpose=True)  # A^T Y + Y A = G
        grads = {0: lambda: -(blas.dgemm(1.0, Y, X, trans_b=True) + blas.dgemm(1.0, Y, X, trans_a=True)),
                 1: lambda: Y}
        return tuple(grads[i]() for i in argnums)

    return vjp


defvjp_argnums(_lyapunov, _lyapunov_vjp)


SYLVESTER_BLOCK = 96
"""Below this size `triangular_sylvester` calls LAPACK's dtrsyl directly; above, it splits and recurses."""


def _trsyl(A, B, C, trana, tranb):
    """dtrsyl: X with op(A) X + X op(B) = C for quasi-triangular A, B; None if (nearly) singular."""
    X, scale, info = lapack.dtrsyl(A, B, C, trana=trana, tranb=tranb)
    if info < 0:
        raise ValueError(f"dtrsyl: illegal argument {-info}")
    if info == 1:
        return None
    return X / scale


def triangular_sylvester(A, B, C, trana="N", tranb="N"):
    """X with op(A) X + X op(B) = C for quasi-triangular (real Schur form) A, B, op(M) = M or M^T
    as trana, tranb = "N" or "T"; None if the equation is singular to working precision.

    Recursive blocking (as in Jonsson and Kagstrom's recursive Sylvester solver) puts the O(N^3)
    work in dgemm; dtrsyl, which is level-2 and slow for large N, only solves the small diagonal
    problems. Splitting A = [[A11, A12], [0, A22]] (never inside a 2 x 2 block) and X, C by rows:
    for op(A) = A solve the bottom rows first, A22 X2 + X2 op(B) = C2, then
    A11 X1 + X1 op(B) = C1 - A12 X2; for op(A) = A^T the top rows first and C2 - A12^T X1.
    Splitting B and X, C by columns likewise: op(B) = B: left columns first, then C2 - X1 B12;
    op(B) = B^T: right columns first, then C1 - X2 B12^T.
    """
    m, n = C.shape
    if max(m, n) <= SYLVESTER_BLOCK:
        return _trsyl(A, B, C, trana, tranb)
    if m >= n:
        k = _split(A)
        A11, A12, A22 = A[:k, :k], A[:k, k:], A[k:, k:]
        if trana == "N":
            X2 = triangular_sylvester(A22, B, C[k:], trana, tranb)
            X1 = None if X2 is None else triangular_sylvester(
                A11, B, blas.dgemm(-1.0, A12, X2, 1.0, C[:k]), trana, tranb)
        else:
            X1 = triangular_sylvester(A11, B, C[:k], trana, tranb)
            X2 = None if X1 is None else triangular_sylvester(
                A22, B, blas.dgemm(-1.0, A12, X1, 1.0, C[k:], trans_a=True), trana, tranb)
        return None if X1 is None or X2 is None else np.vstack([X1, X2])
    k = _split(B)
    B11, B12, B22 = B[:k, :k], B[:k, k:], B[k:, k:]
    if tranb == "N":
        X1 = triangular_sylvester(A, B11, C[:, :k], trana, tranb)
        X2 = None if X1 is None else triangular_sylvester(
            A, B22, blas.dgemm(-1.0, X1, B12, 1.0, C[:, k:]), trana, tranb)
    else:
        X2 = triangular_sylvester(A, B22, C[:, k:], trana, tranb)
        X1 = None if X2 is None else triangular_sylvester(
            A, B11, blas.dgemm(-1.0, X2, B12, 1.0, C[:, :k], trans_b=True), trana, tranb)
    return None if X1 is None or X2 is None else np.hstack([X1, X2])


def _split(T):
    """A split index near the middle of quasi-triangular T that does not cut a 2 x 2 block."""
    k = len(T) // 2
    return k + 1 if T[k, k - 1] != 0.0 else k


# --- Block structure of real Schur and real eigen forms ------------------------------------------
#
# A real quasi-triangular T (real Schur form, `RealSchur`) has 1 x 1 diagonal blocks for real
# eigenvalues and 2 x 2 blocks for complex pairs; a real eigenbasis (`real_eig`) makes a real
# matrix block diagonal with the same kind of blocks. Both structures let eigenvalue-dependent
# quantities be computed block by block, in real arithmetic and without the whole eigenvector basis.


def schur_blocks(T):
    """(start, size) of the diagonal blocks of a real quasi-triangular (Schur) matrix T, in order:
    size 1 for a real eigenvalue, 2 for a complex pair (a non-zero subdiagonal entry T[k + 1, k]).
    Functions of the eigenvalues (the spectral abscissa, sums of real parts) read them off these
    blocks without an eigendecomposition."""
    blocks, k, N = [], 0, len(T)
    while k < N:
        s = 2 if k + 1 < N and T[k + 1, k] != 0.0 else 1
        blocks.append((k, s))
        k += s
    return blocks


def block_invariant_bases(T, k, s):
    """(Xk, Yk), N x s: real bases of the right and left invariant subspaces of T (quasi-upper-
    triangular) that belong to its diagonal block B = T[k:k+s, k:k+s], normalized to Yk^T Xk = I.

    With T = [[T11, T12, T13], [0, B, T23], [0, 0, T33]], Xk = [X; I; 0] and Yk = [0; I; Y] where
    T11 X - X B = -T12 and B Y^T - Y^T T33 = T23 (two thin triangular Sylvester solves): then
    T Xk = Xk B and Yk^T T = B Yk^T, and Xk Yk^T is the spectral projector onto B's eigenvalues.
    Why: to first order the eigenvalues of B move like those of B + Yk^T dT Xk, so the gradient of
    a function of B's eigenvalues needs only these two thin bases, not an eigenvector basis of all
    of T (which is ill conditioned where other eigenvalues nearly coincide). NaN where B shares an
    eigenvalue with T11 or T33 (the solves are singular)."""
    N = len(T)
    B = T[k : k + s, k : k + s]
    Xk = np.zeros((N, s))
    Yk = np.zeros((N, s))
    Xk[k : k + s] = np.eye(s)
    Yk[k : k + s] = np.eye(s)
    if k > 0:  # T11 X + X (-B) = -T12
        X = triangular_sylvester(T[:k, :k], -B, -T[:k, k : k + s])
        Xk[:k] = X if X is not None else np.nan
    if k + s < N:  # B Y^T + Y^T (-T33) = T23
        Yt = triangular_sylvester(B, -T[k + s :, k + s :], T[k : k + s, k + s :])
        Yk[k + s :] = Yt.T if Yt is not None else np.nan
    return Xk, Yk


class BlockDiagonalLyapunov:
    """X with Da X + X Da^T = -S (or, `transpose`, Da^T X + X Da = -S) for the real block-diagonal
    Da = diag(d_1, ..., d_r, B_1, ..., B_m), B_k = [[alpha_k, beta_k], [-beta_k, alpha_k]] (on rows
    and columns r + k and r + m + k: the pairs' first parts, then their second parts), block by block:

    - 1 x 1: x = -s / (d_i + d_j);
    - 1 x 2 (real row i, pair column k), with xi = x_1 + i x_2: (d_i + alpha_k - i beta_k) xi = -(s_1 + i s_2),
      and likewise 2 x 1 with the pair's alpha, beta;
    - 2 x 2: write X = [[p, q], [-q, p]] + [[s, t], [t, -s]], the parts that commute and anticommute
      with E = [[0, 1], [-1, 0]] (B_k = alpha_k I + beta_k E); on them E acts as multiplication by i
      and by -i, so (alpha_k + alpha_l + i (beta_k - beta_l)) (p + iq) = -(the same part of S) and
      (alpha_k + alpha_l - i (beta_k + beta_l)) (s + it) = -(its part of S).

    The transposed equation is the same with beta -> -beta, i.e. with every complex coefficient
    conjugated; so the reciprocal coefficients are computed once and serve the forward (P) and the
    adjoint (Q) solve, each then O(N^2) multiplications. A singular block (gamma_i + conj(gamma_j)
    = 0) gives inf or NaN: the solution does not exist.

    Why: in a real eigenbasis W of A (`real_eig`'s columns reordered: real eigenvectors first, then
    the pairs' Re x_k, then their Im x_k), A = W Da W^-1 with d, alpha + i beta its eigenvalues, so
    A's Lyapunov equation A P + P A^T = -Q is this one with S = W^-1 Q W^-T and P = W X W^T: after
    the O(N^3) change of basis, a forward and an adjoint solve cost O(N^2) each."""

    def __init__(self, r, d, alpha, beta):
        self.r = r
        self.real = -1.0 / (d[:, None] + d[None, :])
        self.mixed = _reciprocal(-1.0, d[:, None] + alpha[None, :], -beta[None, :])  # (real row, pair); transposed for (pair, real)
        a = alpha[:, None] + alpha[None, :]
        self.commuting = _reciprocal(-0.5, a, beta[:, None] - beta[None, :])
        self.anticommuting = _reciprocal(-0.5, a, -(beta[:, None] + beta[None, :]))

    def solve(self, S, transpose=False):
        r, X = self.r, np.empty_like(S)
        mixed, commuting, anticommuting = self.mixed, self.commuting, self.anticommuting
        if transpose:
            mixed, commuting, anticommuting = mixed.conj(), commuting.conj(), anticommuting.conj()
        m = len(commuting)
        P, Q = slice(r, r + m), slice(r + m, None)
        np.multiply(S[:r, :r], self.real, out=X[:r, :r])
        # the complex parts are formed in place (no temporaries: this is most of the solve's time)
        xi = np.empty((r, m), complex)
        xi.real, xi.imag = S[:r, P], S[:r, Q]
        xi *= mixed
        X[:r, P], X[:r, Q] = xi.real, xi.imag
        xi = np.empty((m, r), complex)
        xi.real, xi.imag = S[P, :r], S[Q, :r]
        xi *= mixed.T
        X[P, :r], X[Q, :r] = xi.real, xi.imag
        s11, s12, s21, s22 = S[P, P], S[P, Q], S[Q, P], S[Q, Q]
        z = np.empty((2, m, m), complex)
        np.add(s11, s22, out=z[0].real)
        np.subtract(s12, s21, out=z[0].imag)
        np.subtract(s11, s22, out=z[1].real)
        np.add(s12, s21, out=z[1].imag)
        z[0] *= commuting
        z[1] *= anticommuting
        (p, q), (s, t) = (z[0].real, z[0].imag), (z[1].real, z[1].imag)
        np.add(p, s, out=X[P, P])
        np.add(q, t, out=X[P, Q])
        np.subtract(t, q, out=X[Q, P])
        np.subtract(p, s, out=X[Q, Q])
        return X


def _reciprocal(scale, x, y):
    """scale / (x + iy) as scale (x - iy) / (x^2 + y^2), in real arithmetic (numpy's complex
    division is several times slower); inf or NaN where x + iy = 0."""
    f = scale / (x * x + y * y)
    out = np.empty(f.shape, complex)
    np.multiply(x, f, out=out.real)
    np.multiply(y, -f, out=out.imag)
    return out
