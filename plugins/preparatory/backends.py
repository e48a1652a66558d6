"""Fast value-and-gradient backends for the preparatory-network losses L1, L2, L3.

`preparatory_losses(J, w, tau, backend)` returns the vector (L1, L2, L3) of DESIGN.md
("Mathematics to get exactly right") as one autograd primitive, differentiable with respect to J
and w (tau is a constant), so it composes with any autograd code around it (J = J0 + U V, weights,
other loss terms). Backends:

- ``fused``: one eigendecomposition (LAPACK dgeev, as numpy.linalg.eig, read in its real form:
  `tcnet.linalg.real_eig`), one real inverse and
  two symmetric real N x N products for the value; the gradient in three more, or, through
  `low_rank_losses` for J = J0 + U V with thin U, V, in products with thin matrices only; no
  complex matrix products (`_EigFactor`).
- ``lyapunov``: no eigenvectors at all. One real Schur factorization A = Z T Z^T is shared by the
  Lyapunov solve and its adjoint (two blocked triangular Sylvester solves of `tcnet.linalg`, the
  adjoint method of `tcnet.linalg.lyapunov`); well conditioned where eigenvalues nearly coincide
  (`_SchurFactor`).
- ``auto`` (the default): the fused path, unless the eigendecomposition it has just computed
  shows an eigenvalue that is nearly repeated, then the Lyapunov path (`factorize`).

When is an eigenvalue "nearly repeated"? The fused path loses accuracy with the conditioning of
the eigenvector basis, not with the eigenvalue gaps themselves (a normal matrix with a repeated
eigenvalue is harmless), so the test reads the eigenvalue condition numbers
kappa_i = ||y_i|| ||x_i|| / |y_i^H x_i| (x_i, y_i^H right and left eigenvectors; the row norms of
R^-1 for numpy's unit-norm R). By Wilkinson ("Note on matrices with a very ill-conditioned
eigenproblem", Numer. Math. 19, 1972) a perturbation of norm at most ||J||_2 / sqrt(kappa_i^2 - 1)
makes lambda_i a repeated eigenvalue, so 1/kappa_i measures how far lambda_i is, relative to J,
from coinciding with another; nearly defective J (the case that breaks eigenvector formulas) have
kappa ~ 1/gap. The switch is at `AUTO_CONDITION`.

The generic route (autograd through `tcnet.linalg.eig`) stays in the linear_decay state; it is
what user-written losses use and what these backends are tested against.

Common mathematics. A = (J - I)/tau, gamma = eigenvalues of A, b = A^T w, and P solves
A P + P A^T + I = 0 (for stable A, P = int_0^inf exp(A t) exp(A t)^T dt). Then

    L1 = Tr(P)/(N tau),   L3 = tau w^T A P A^T w = tau b^T P b,   L2 = sum_i max(Re gamma_i, 0)^2.

The VJP for the cotangent g = (g1, g2, g3) is the gradient of g1 L1 + g2 L2 + g3 L3.
With C = g1/(N tau) I + g3 tau b b^T, L1 and L3's P-dependence is Tr(C P). Differentiating the
Lyapunov equation, A dP + dP A^T = -(dA P + P dA^T); with the adjoint Q, A^T Q + Q A + C = 0,
Tr(C dP) = -Tr((A^T Q + Q A) dP) = Tr(Q (dA P + P dA^T)) = 2 Tr(Q dA P) (P, Q symmetric), i.e.
grad_A Tr(C P) = 2 Q P. L3's explicit A in b adds 2 g3 tau w (P b)^T, and
grad_J = grad_A / tau. For w: grad_w = 2 g3 tau A P b. For L2, with left/right eigenvectors
y_i^H, x_i (y_i^H x_i = 1), d lambda_i = y_i^H dJ x_i, so grad_J L2 = Re sum_i e_i conj(y_i) x_i^T,
e_i = 2 g2 max(Re gamma_i, 0)/tau.
"""
import numpy as np
from autograd.extend import defvjp, primitive
from autograd.tracer import getval
from scipy.linalg import blas, lapack

from tcnet.linalg import BlockDiagonalLyapunov, RealSchur, block_invariant_bases, real_eig, schur_blocks
from tcnet.validate import ConfigError

HAND_DERIVED = ("auto", "fused", "lyapunov")
"""The values of linear_decay's `backend` setting this module computes (with hand-derived VJPs);
the fourth, "eig", is autograd through tcnet.linalg.eig (`LinearDecayState`)."""

AUTO_CONDITION = 1e3
"""``auto`` takes the Lyapunov path where the largest eigenvalue condition number exceeds this.
Measured on the nearly defective test matrices of tests/test_backends.py, the fused gradient
agrees with the Lyapunov one to 4e-12 at kappa = 1.7e2, 5e-9 at 1.6e3 and 1e-5 at 1.6e4; random
and trained preparatory networks (N = 100..1000) stay at or below about 2e2."""


def preparatory_losses(J, w, tau, backend="auto", real_form=None):
    """(L1, L2, L3) of the network tau dx/dt = -x + J x with readout w, as a length-3 array.

    Differentiable by autograd with respect to J and w; `backend` is "auto", "fused" or
    "lyapunov"; `real_form` optionally passes tcnet.linalg.real_eig(J) when the caller already has it.
    """
    return losses(J, w, factorize(J, w, tau, backend, real_form))


def factorize(J, w, tau, backend="auto", real_form=None):
    """The factorization of (J, w) that `losses` reads: its `path` says which one ("fused" or
    "lyapunov"). `real_form` = tcnet.linalg.real_eig(J) as computed elsewhere, saves the fused and
    auto paths their own; "auto" takes the Lyapunov path where `condition` > AUTO_CONDITION."""
    if backend not in HAND_DERIVED:
        raise ConfigError(f"preparatory losses: backend must be one of {', '.join(HAND_DERIVED)}, got {backend!r}")
    Jv, wv, tau = np.asarray(getval(J), dtype=float), np.asarray(getval(w), dtype=float), float(tau)
    if backend == "lyapunov":
        return _SchurFactor(Jv, wv, tau)
    factor = _EigFactor(Jv, wv, tau, real_form)
    if backend == "auto" and not factor.condition <= AUTO_CONDITION:  # NaN (singular basis) too
        return _SchurFactor(Jv, wv, tau)
    return factor


def losses(J, w, factor):
    """(L1, L2, L3) from `factor` = factorize(J, w, ...), differentiable with respect to J and w."""
    return _losses(J, w, factor)


def low_rank_losses(J0, U, V, w, factor):
    """(L1, L2, L3) of J = J0 + U V from `factor` = factorize(J0 + U V, w, ...), differentiable with
    respect to J0, U, V and w. The same as losses(J0 + U V, w, factor), but for a thin U (N x n) and
    V (n x N) the gradients (grad_J) V^T and U^T (grad_J) are computed without forming the N x N
    grad_J: a chain of N x N by N x n products, O(N^2 n) instead of three O(N^3) products."""
    return _low_rank_losses(J0, U, V, w, factor)


@primitive
def _losses(J, w, factor):
    """The values computed by `factor` (a `_EigFactor` or `_SchurFactor` of J, w)."""
    return factor.values


defvjp(
    _losses,
    lambda ans, J, w, factor: factor.grad_J,
    lambda ans, J, w, factor: factor.grad_w,
)


@primitive
def _low_rank_losses(J0, U, V, w, factor):
    """The values computed by `factor` of J0 + U V and w."""
    return factor.values


defvjp(
    _low_rank_losses,
    lambda ans, J0, U, V, w, factor: factor.grad_J,
    lambda ans, J0, U, V, w, factor: lambda g: factor.grad_J_times(g, V.T),
    lambda ans, J0, U, V, w, factor: lambda g: factor.times_grad_J(g, U.T),
    lambda ans, J0, U, V, w, factor: factor.grad_w,
)


def _l2(re_gamma):
    """L2 and its per-eigenvalue derivative factor max(Re gamma, 0)."""
    excess = np.maximum(re_gamma, 0.0)
    return float(np.sum(excess**2)), excess


class _Factor:
    """The gradient both paths share: grad_J = left M right + 2 g3 w (P b)^T, with left, right the
    basis change (K^T and W^T on the eig path, Z and Z^T on the Schur path) and M the gradient of
    g1 L1 + g2 L2 + g3 L3 in that basis, which a path gives as the products M B and A M
    (`inner_times`, `times_inner`), so that grad_J B and A grad_J for thin A, B need no N x N
    product. A path sets left, right, J, w, Pb (= P b) and `adjoint(g)`, its cotangent-dependent
    part, computed once for the VJPs of one backward pass (they share g).

    A path also sets `abscissa`, max Re gamma (the spectral abscissa of A), read off the
    eigenvalues it computes for L2 anyway. L1 and L3 are the integrals they stand for only where
    it is negative: where it is >= 0, int_0^inf exp(A t) exp(A t)^T dt diverges, but the solution
    P of the Lyapunov equation (unique wherever no gamma_i + gamma_j = 0) is still finite, and so
    are the values computed from it; L1 can even be negative."""

    def cotangent(self, g):
        """`adjoint(g)` for g, computed once per distinct cotangent."""
        key = tuple(np.real(g))
        if getattr(self, "_cotangent", (None,))[0] != key:
            self._cotangent = (key, self.adjoint(*key))
        return self._cotangent[1]

    def grad_J(self, g):
        inner = self.inner_times(g, self.right)
        return self.left @ inner + 2.0 * np.real(g[2]) * np.outer(self.w, self.Pb)

    def grad_J_times(self, g, B):
        """grad_J B."""
        return self.left @ self.inner_times(g, self.right @ B) + 2.0 * np.real(g[2]) * np.outer(self.w, self.Pb @ B)

    def times_grad_J(self, g, A):
        """A grad_J."""
        return self.times_inner(g, A @ self.left) @ self.right + 2.0 * np.real(g[2]) * np.outer(A @ self.w, self.Pb)

    def grad_w(self, g):
        return 2.0 * np.real(g[2]) * (self.J @ self.Pb - self.Pb)


class _EigFactor(_Factor):
    """Fused eig path: everything in the real eigenvector basis of dgeev, in real arithmetic.

    The real eigenvectors (dgeev's own real form, `tcnet.linalg.real_eig`, reordered: real
    eigenvalues first, then for the pairs a_k + ib_k the columns u_k, then the columns v_k, of
    their eigenvectors x_k = u_k + iv_k)
    give J W = W D with W real and D block diagonal: d on a real eigenvalue, [[a, b], [-b, a]] on
    a pair (on its rows and columns u_k, v_k). So A = (J - I)/tau =
    W Da W^-1 with Da = (D - I)/tau (blocks gamma, or [[alpha, beta], [-beta, alpha]] with
    alpha + i beta = gamma), and with K = W^-1:

    - P = W X W^T, where Da X + X Da^T = -S, S = K K^T (from A P + P A^T + I = 0);
    - the adjoint Q = K^T Y K, where Da^T Y + Y Da = -W^T C W, W^T C W = c1 G + c3 v v^T,
      G = W^T W, v = W^T b (from A^T Q + Q A + C = 0);
    - L1 = sum(X o G)/(N tau), L3 = tau v^T X v, and since K W = I,
      grad_J = K^T (2 Y X / tau + diag(e)) W^T + 2 g3 w (P b)^T,

    where the L2 term uses conj(y_i) x_i^T summed over a conjugate pair = (W diag(e) K)^T restricted
    to that pair (e is equal on both). Both block-diagonal Lyapunov equations split into independent
    1 x 1, 1 x 2, 2 x 1 and 2 x 2 blocks solved in closed form
    (`tcnet.linalg.BlockDiagonalLyapunov`), in O(N^2); the O(N^3) work is eig, inv(W), G and S
    (`_Factor` applies the gradient as products with thin matrices where it can). This is the
    eigenbasis formula R (M o F) R^H of DESIGN.md with the complex basis R = W T
    (T = [[1, 1], [i, -i]] on a pair) multiplied out. No 1/(lambda_i - lambda_j) appears, but
    everything degrades with cond(W) (nearly defective J; see `AUTO_CONDITION`).
    """

    path = "fused"

    def __init__(self, J, w, tau, real_form=None):
        N = len(J)
        self.J, self.w, self.tau, self.N = J, w, tau, N
        wr, wi, vr = real_eig(J) if real_form is None else real_form
        # dgeev lists a pair as a + ib (b > 0), then its conjugate, with the eigenvector's Re x, Im x
        # in those two columns. Reorder: real eigenvalues first, then the pairs' Re x, then their
        # Im x (each part of a block of the Lyapunov solve is then a contiguous block of W's columns).
        real = np.flatnonzero(wi == 0)
        first = np.flatnonzero(wi > 0)
        if not (np.array_equal(wr[first + 1], wr[first]) and np.array_equal(wi[first + 1], -wi[first])):
            raise np.linalg.LinAlgError("eig: complex eigenvalues not in adjacent conjugate pairs")
        r, m = len(real), len(first)
        W = np.empty((N, N))
        W[:, :r] = vr[:, real]
        W[:, r : r + m], W[:, r + m :] = vr[:, first], vr[:, first + 1]
        self.W = W
        self.K = _inverse(W)
        S = self.K @ self.K.T
        # kappa_i = ||row i of R^-1|| (R unit-norm); R^-1 = T^-1 K, so on a pair it is |k_p + i k_q| / 2;
        # the squared row norms of K are the diagonal of S
        k2 = np.diag(S)
        kappa2 = np.concatenate([k2[:r], (k2[r : r + m] + k2[r + m :]) / 4])
        self.condition = float(np.sqrt(np.max(kappa2)))
        """The largest eigenvalue condition number kappa_i (see the module docstring)."""
        self.d = (wr[real] - 1.0) / tau
        self.alpha, self.beta = (wr[first] - 1.0) / tau, wi[first] / tau
        self.abscissa = float(max(np.max(self.d, initial=-np.inf), np.max(self.alpha, initial=-np.inf)))
        """max Re gamma (see `_Factor`), from the eigenvalues L2 reads."""
        self.G = W.T @ W
        self.lyapunov = BlockDiagonalLyapunov(r, self.d, self.alpha, self.beta)
        self.X = self.lyapunov.solve(S)
        self.b = (J.T @ w - w) / tau
        self.v = W.T @ self.b
        self.Xv = self.X @ self.v
        self.Pb = W @ self.Xv
        self.left, self.right = self.K.T, W.T
        L2_real, excess_real = _l2(self.d)
        L2_pairs, excess_pairs = _l2(self.alpha)
        self.excess = np.concatenate([excess_real, excess_pairs, excess_pairs])
        L1 = np.vdot(self.X, self.G) / (N * tau)
        L3 = tau * self.v @ self.Xv
        self.values = np.array([L1, L2_real + 2 * L2_pairs, L3])

    def adjoint(self, g1, g2, g3):
        """(2/tau) Y, the adjoint in the eigenbasis scaled as M = (2/tau) Y X + diag(e) needs it
        (the scale goes into the right-hand side, the solve being linear), and e."""
        c1, c3 = 2.0 * g1 / (self.N * self.tau**2), 2.0 * g3
        C = np.multiply(self.G, c1)
        C += np.outer(c3 * self.v, self.v)
        Y = self.lyapunov.solve(C, transpose=True)
        return Y, 2.0 * g2 * self.excess / self.tau

    def inner_times(self, g, B):
        Y, e = self.cotangent(g)
        return Y @ (self.X @ B) + e[:, None] * B

    def times_inner(self, g, A):
        Y, e = self.cotangent(g)
        return (A @ Y) @ self.X + A * e


def _inverse(W):
    """W^-1 by LAPACK's LU (dgetrf) and dgetri with the optimal workspace: at N = 500, 7.3 ms
    against 8.4 for scipy.linalg.inv (the same routines) and 12.6 for numpy.linalg.inv (an LU
    solve with the identity), one thread; LinAlgError where W is singular, as numpy's."""
    lu, piv, info = lapack.dgetrf(W)
    if info == 0:
        lwork = int(lapack.dgetri_lwork(len(W))[0])
        inverse, info = lapack.dgetri(lu, piv, lwork=lwork, overwrite_lu=1)
    if info != 0:
        raise np.linalg.LinAlgError("eigenvector basis W is singular (a defective J)")
    return inverse


class _SchurFactor(_Factor):
    """Eig-free path: one real Schur factorization A = Z Ta Z^T (`tcnet.linalg.RealSchur`) shared
    by the Lyapunov solve and its adjoint.

    In the Schur basis Pt = Z^T P Z solves Ta Pt + Pt Ta^T = -I and the adjoint Qt = Z^T Q Z solves
    Ta^T Qt + Qt Ta = -Z^T C Z, with Z^T C Z = c1 I + c3 v v^T, v = Z^T b; both are triangular
    Sylvester solves with the same Ta (`tcnet.linalg.triangular_sylvester`). This is the adjoint
    method of `tcnet.linalg.lyapunov`, fused: C is known in the Schur basis, so no N x N matrix
    goes in or out of it but the gradient. Then L1 = Tr(Pt)/(N tau), L3 = tau v^T Pt v and
    grad_J = Z (2 Qt Pt / tau + grad L2) Z^T + 2 g3 w (P b)^T.

    L2 reads gamma off the diagonal blocks of Ta (a 2 x 2 block [[a, b], [c, d]] holds a pair with
    real part (a + d)/2). Its gradient needs left and right eigenvectors of the unstable
    eigenvalues only: for the diagonal block B (1 x 1 or 2 x 2) at rows k of Ta =
    [[T11, T12, T13], [0, B, T23], [0, 0, T33]], the real bases Xk = [X; I; 0] and Yk = [0; I; Y]
    with T11 X - X B = -T12 and B Y^T - Y^T T33 = T23 (two thin triangular solves:
    `tcnet.linalg.block_invariant_bases`) span B's right and left invariant subspaces and satisfy
    Yk^T Xk = I, so the eigenvalues of B move to first
    order like those of B + Yk^T dTa Xk and d(sum of their real parts) = Tr(Yk^T dTa Xk). Hence, with
    dTa = Z^T dJ Z / tau, the Schur-basis gradient of L2 is sum_k e_k Yk Xk^T, e_k =
    2 g2 max(Re gamma_k, 0)/tau. No eigenvector basis of the whole matrix is formed, so nearly
    repeated stable eigenvalues cost nothing in accuracy (only nearly repeated *unstable* ones are
    ill conditioned, as their eigenvalues themselves are). The O(N^3) products use scipy's BLAS,
    like the Schur factorization (see `tcnet.linalg.RealSchur`). Where the Lyapunov operator is
    singular to working precision (gamma_i + gamma_j = 0) L1 and L3 do not exist and are NaN.
    """

    path = "lyapunov"

    def __init__(self, J, w, tau):
        N = len(J)
        self.J, self.w, self.tau, self.N = J, w, tau, N
        self.schur = RealSchur((J - np.eye(N)) / tau)
        self.Pt = self.schur.lyapunov_schur(-np.eye(N))
        self.b = (J.T @ w - w) / tau
        self.v = self.schur.Z.T @ self.b
        self.Pv = self.Pt @ self.v
        self.Pb = self.schur.Z @ self.Pv
        self.left, self.right = self.schur.Z, self.schur.Z.T
        Ta = self.schur.T
        self.blocks = schur_blocks(Ta)
        re_gamma = np.array([np.trace(Ta[k : k + s, k : k + s]) / s for k, s in self.blocks])
        self.abscissa = float(np.max(re_gamma))
        """max Re gamma (see `_Factor`), from the diagonal blocks of Ta that L2 reads."""
        sizes = np.array([s for _, s in self.blocks])
        self.excess = np.maximum(re_gamma, 0.0)
        L2 = float(np.sum(sizes * self.excess**2))
        self.values = np.array([np.trace(self.Pt) / (N * tau), L2, tau * self.v @ self.Pv])

    def adjoint(self, g1, g2, g3):
        """(2/tau) Qt (the scale in the right-hand side) and the L2 term as (c_k, Yk, Xk), c_k = 2 g2 e_k/tau."""
        N, tau = self.N, self.tau
        Ct = (2.0 * g1 / (N * tau**2)) * np.eye(N) + (2.0 * g3) * np.outer(self.v, self.v)
        Qt = self.schur.lyapunov_schur(-Ct, transpose=True)
        unstable = []
        for (k, s), e in zip(self.blocks, self.excess):
            if g2 != 0.0 and e > 0.0:
                Xk, Yk = block_invariant_bases(self.schur.T, k, s)
                unstable.append((2.0 * g2 * e / tau, Yk, Xk))
        return Qt, unstable

    def inner_times(self, g, B):
        Qt, unstable = self.cotangent(g)
        out = blas.dgemm(1.0, Qt, blas.dgemm(1.0, self.Pt, B))
        for c, Yk, Xk in unstable:
            out += c * (Yk @ (Xk.T @ B))
        return out

    def times_inner(self, g, A):
        Qt, unstable = self.cotangent(g)
        out = blas.dgemm(1.0, blas.dgemm(1.0, A, Qt), self.Pt)
        for c, Yk, Xk in unstable:
            out += c * ((A @ Yk) @ Xk.T)
        return out
