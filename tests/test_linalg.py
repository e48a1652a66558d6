"""tcnet.linalg: `eig`'s forward values, and its VJP against central finite differences of
gauge-invariant real scalar functions, autograd's own eig gradient and a Lyapunov solve;
`sylvester` and `lyapunov` against scipy's solvers, their VJPs against central finite differences
(also where eigenvalues nearly coincide), and the blocked triangular solver behind them; the
Schur-block helpers against scipy's eigenvectors and Lyapunov solver.

Complex convention (pinned by `test_autograd_complex_convention`): for a real f of a complex
matrix Z = X + iY, autograd's grad(f)(Z) = df/dX - i df/dY, so the directional derivative of f
along E is Re(sum(grad * E)).
"""
import warnings

import autograd.numpy as np
import numpy as onp
import pytest
import scipy.linalg
from autograd import grad
from autograd.numpy import linalg as ag_linalg
from scipy.linalg import schur, solve_continuous_lyapunov, solve_sylvester

from tcnet import linalg
from tcnet.linalg import EigGradientWarning, _reciprocal_gaps, eig, lyapunov, sylvester

TOL = 1e-6  # relative error of the gradient against finite differences
STEP = 1e-3  # 4th-order central stencil: truncation ~STEP^4, roundoff ~1e-16 / STEP
TAU = 0.01  # time constant of the preparatory-network model


# Gauge-invariant real scalar functions of a matrix, built from eig.


def eigenvalue_loss(A):
    """Uses grad_lam only."""
    lam, _ = eig(A)
    return np.sum(np.real(lam) ** 2) + np.sum(np.abs(lam) ** 2)


def propagator_loss(W):
    """Re tr(W^T V diag(exp(lam / N)) V^-1) = Re tr(W^T expm(A / N)); uses grad_V."""

    def loss(A):
        lam, V = eig(A)
        return np.real(np.trace(W.T @ (V * np.exp(lam / len(lam))) @ np.linalg.inv(V)))

    return loss


def l1_loss(J):
    """L1 = Re tr(R (M o F) R^H) / (N tau): gamma = (lam - 1) / tau, M = (R^H R)^-1,
    F_ij = -1 / (gamma_i + conj(gamma_j)); the trace of the Lyapunov solution P, over N tau."""
    lam, R = eig(J)
    gamma = (lam - 1) / TAU
    RH = np.conj(R).T
    M = np.linalg.inv(RH @ R)
    F = -1 / (gamma[:, None] + np.conj(gamma)[None, :])
    return np.real(np.trace(R @ (M * F) @ RH)) / (len(lam) * TAU)


def phase_loss(A):
    """sum |V_ij|^4: ignores the phase of each unit-norm eigenvector but not its scale."""
    _, V = eig(A)
    return np.sum(np.abs(V) ** 4)


# Matrices and finite differences.


def random_matrix(n, kind, seed=None):
    """'real' (the seeds give complex-conjugate pairs), 'complex', or 'real-spectrum'
    (real eigenvalues 1..n and real eigenvectors)."""
    rng = onp.random.default_rng(1000 + n if seed is None else seed)
    A = rng.standard_normal((n, n))
    if kind == "complex":
        return (A + 1j * rng.standard_normal((n, n))) / onp.sqrt(2)
    if kind == "real-spectrum":
        return A @ onp.diag(onp.arange(1.0, n + 1)) @ onp.linalg.inv(A)
    return A


def stable(A):
    """J = 0.5 A / sqrt(N): spectral radius about 0.5, so all Re(lam) < 1."""
    J = 0.5 * A / onp.sqrt(len(A))
    assert onp.max(onp.linalg.eigvals(J).real) < 1
    return J


def has_conjugate_pair(A):
    return onp.any(onp.abs(onp.linalg.eigvals(A).imag) > 1e-3)


def derivative(f, A, E):
    """d/dt f(A + t E) at t = 0, 4th-order central differences."""
    return (8 * (f(A + STEP * E) - f(A - STEP * E)) - (f(A + 2 * STEP * E) - f(A - 2 * STEP * E))) / (
        12 * STEP
    )


def fd_gradient(f, A):
    """Entry by entry, in autograd's convention df/dX - i df/dY for complex A."""
    g = onp.zeros(A.shape, A.dtype)
    for idx in onp.ndindex(A.shape):
        E = onp.zeros(A.shape, A.dtype)
        E[idx] = 1
        g[idx] = derivative(f, A, E)
        if onp.iscomplexobj(A):
            g[idx] -= 1j * derivative(f, A, 1j * E)
    return g


def relative_error(a, b):
    return onp.linalg.norm(a - b) / onp.linalg.norm(b)


def case(name, n, kind):
    """(f, A) for a named function on a matrix of size n and kind."""
    A = random_matrix(n, kind)
    if name == "eigenvalues":
        return eigenvalue_loss, A
    if name == "propagator":
        return propagator_loss(onp.random.default_rng(n).standard_normal((n, n))), A
    return l1_loss, stable(A)


FUNCTIONS = ["eigenvalues", "propagator", "l1"]


# Tests.


@pytest.mark.parametrize("kind", ["real", "complex", "real-spectrum"])
def test_forward_equals_numpy(kind):
    A = random_matrix(5, kind)
    w, V = eig(A)
    w_np, V_np = onp.linalg.eig(A)
    assert w.dtype == V.dtype == complex
    onp.testing.assert_array_equal(w, w_np)
    onp.testing.assert_array_equal(V, V_np)


def test_rejects_non_square_stack():
    with pytest.raises(ValueError):
        eig(onp.zeros((2, 3, 3)))


def test_real_test_matrices_have_conjugate_pairs():
    for n in [2, 3, 5, 10, 30, 60]:
        assert has_conjugate_pair(random_matrix(n, "real"))
        assert has_conjugate_pair(stable(random_matrix(n, "real")))


def test_autograd_complex_convention():
    # f(x + iy) = x^2 + 3y: autograd gives df/dx - i df/dy = 2x - 3i.
    assert grad(lambda z: np.real(z) ** 2 + 3 * np.imag(z))(1.0 + 2.0j) == 2.0 - 3.0j


@pytest.mark.parametrize("kind", ["real", "complex"])
@pytest.mark.parametrize("n", [2, 3, 5, 10])
@pytest.mark.parametrize("name", FUNCTIONS)
def test_gradient_matches_full_finite_differences(name, n, kind):
    f, A = case(name, n, kind)
    g = grad(f)(A)
    assert g.dtype == (complex if kind == "complex" else float)
    assert relative_error(g, fd_gradient(f, A)) < TOL


@pytest.mark.parametrize("kind", ["real", "complex"])
@pytest.mark.parametrize("n", [30, 60])
@pytest.mark.parametrize("name", FUNCTIONS)
def test_gradient_matches_directional_finite_differences(name, n, kind):
    f, A = case(name, n, kind)
    g = grad(f)(A)
    rng = onp.random.default_rng(7)
    directions = [random_matrix(n, kind, seed=rng.integers(2**32)) for _ in range(3)]
    directions = [E / onp.linalg.norm(E) for E in directions]
    ad = [onp.real(onp.sum(g * E)) for E in directions]
    fd = [derivative(f, A, E) for E in directions]
    assert relative_error(onp.array(ad), onp.array(fd)) < TOL


@pytest.mark.parametrize("name", ["eigenvalues", "propagator"])
def test_gradient_with_real_spectrum(name):
    # numpy returns real eigenvectors here; eig casts them to complex.
    A = random_matrix(5, "real-spectrum")
    f = eigenvalue_loss if name == "eigenvalues" else propagator_loss(onp.eye(5))
    assert relative_error(grad(f)(A), fd_gradient(f, A)) < TOL


@pytest.mark.parametrize("kind", ["real", "complex"])
def test_gradient_of_phase_invariant_function(kind):
    A = random_matrix(5, kind)
    assert relative_error(grad(phase_loss)(A), fd_gradient(phase_loss, A)) < TOL


@pytest.mark.parametrize("kind", ["real", "complex"])
@pytest.mark.parametrize("n", [3, 10, 30])
def test_l1_equals_lyapunov_trace(n, kind):
    J = stable(random_matrix(n, kind))
    A = (J - onp.eye(n)) / TAU
    P = solve_continuous_lyapunov(A, -onp.eye(n))  # A P + P A^H + I = 0
    expected = onp.trace(P).real / (n * TAU)
    assert abs(l1_loss(J) - expected) < 1e-9 * abs(expected)


@pytest.mark.parametrize("name", ["eigenvalues", "propagator", "l1", "phase"])
def test_real_arithmetic_vjp_equals_the_complex_formula(name):
    """For real A the VJP runs in the real eigenbasis; the complex formula (the same A as a complex
    matrix, whose cotangent's real part is the real one) gives the same gradient to 1e-11."""
    f, A = case(name, 9, "real") if name != "phase" else (phase_loss, random_matrix(9, "real"))
    assert has_conjugate_pair(A) and onp.any(onp.linalg.eigvals(A).imag == 0)
    assert relative_error(grad(f)(A), onp.real(grad(f)(A.astype(complex)))) < 1e-11


def test_matches_autograd_eig_gradient():
    # autograd.numpy.linalg.eig has a VJP for general matrices (grad_eig, eq. 4.77 with an
    # explicit inverse and an absolute 1e-20 shift of the gaps); on distinct eigenvalues the two agree.
    A = random_matrix(6, "real")
    W = onp.random.default_rng(6).standard_normal((6, 6))

    def eigenvalue_loss_ag(A):
        lam, _ = ag_linalg.eig(A)
        return np.sum(np.real(lam) ** 2) + np.sum(np.abs(lam) ** 2)

    def propagator_loss_ag(A):
        lam, V = ag_linalg.eig(A)
        return np.real(np.trace(W.T @ (V * np.exp(lam / 6)) @ np.linalg.inv(V)))

    assert relative_error(grad(eigenvalue_loss)(A), grad(eigenvalue_loss_ag)(A)) < 1e-10
    assert relative_error(grad(propagator_loss(W))(A), grad(propagator_loss_ag)(A)) < 1e-10


def similar(eigenvalues):
    S = onp.random.default_rng(3).standard_normal((len(eigenvalues), len(eigenvalues)))
    return S @ onp.diag(eigenvalues) @ onp.linalg.inv(S)


def test_warns_for_nearly_repeated_eigenvalue():
    A = similar([1.0, 1.0 + 1e-11, 3.0])
    with pytest.warns(EigGradientWarning, match="unreliable") as record:
        grad(propagator_loss(onp.eye(3)))(A)
    assert record[0].filename == __file__  # stacklevel points at the grad call, not autograd


def test_repeated_eigenvalue_gives_finite_gradient():
    for A in [similar([1.0, 1.0, 3.0]), 2 * onp.eye(3), onp.zeros((3, 3))]:
        with pytest.warns(EigGradientWarning):
            g = grad(propagator_loss(onp.eye(3)))(A)
        assert onp.all(onp.isfinite(g))


@pytest.mark.parametrize("A", [random_matrix(10, "real"), onp.array([[0.0, 1.0], [-1.0, 0.0]])])
def test_no_warning_for_conjugate_pairs(A):
    assert has_conjugate_pair(A)
    with warnings.catch_warnings():
        warnings.simplefilter("error", EigGradientWarning)
        grad(propagator_loss(onp.eye(len(A))))(A)


def test_reciprocal_gaps():
    lam = onp.random.default_rng(4).standard_normal(8) * onp.exp(1j * onp.arange(8))
    d = lam[None, :] - lam[:, None]
    F = _reciprocal_gaps(lam)
    off = ~onp.eye(8, dtype=bool)
    assert onp.all(F[~off] == 0)
    assert onp.max(onp.abs(F[off] * d[off] - 1)) < 1e-12
    assert onp.all(onp.isfinite(_reciprocal_gaps(onp.array([1.0, 1.0, 1.0 + 1e-20, 0.0]))))


# --- sylvester and lyapunov ------------------------------------------------------------------


@pytest.fixture
def small_blocks(monkeypatch):
    """Blocks of 8 in the triangular solver, so that 20..40-sized problems recurse several levels."""
    monkeypatch.setattr(linalg, "SYLVESTER_BLOCK", 8)


def shifted(n, seed, shift):
    """A random n x n matrix (complex pairs among its eigenvalues) minus shift I."""
    return onp.random.default_rng(seed).standard_normal((n, n)) - shift * onp.eye(n)


@pytest.mark.parametrize("blocked", [False, True])
def test_sylvester_and_lyapunov_match_scipy(request, blocked):
    if blocked:
        request.getfixturevalue("small_blocks")
    rng = onp.random.default_rng(20)
    A, B = shifted(33, 21, 8.0), shifted(27, 22, 8.0)
    assert has_conjugate_pair(A) and has_conjugate_pair(B)
    C, Q = rng.standard_normal((33, 27)), rng.standard_normal((33, 33))  # Q not symmetric
    assert relative_error(sylvester(A, B, C), solve_sylvester(A, B, C)) < 1e-12
    assert relative_error(lyapunov(A, Q), solve_continuous_lyapunov(A, Q)) < 1e-12


@pytest.mark.parametrize("trana, tranb", [("N", "T"), ("T", "N"), ("N", "N"), ("T", "T")])
def test_triangular_sylvester_matches_scipy(small_blocks, trana, tranb):
    """The blocked solver alone, on Schur forms (splits next to 2 x 2 blocks), every transpose."""
    A, _ = schur(shifted(45, 11, 8.0))
    B, _ = schur(shifted(37, 12, 8.0))
    assert onp.any(onp.diag(A, -1) != 0) and onp.any(onp.diag(B, -1) != 0)
    C = onp.random.default_rng(13).standard_normal((45, 37))
    op = lambda M, t: M.T if t == "T" else M  # noqa: E731
    X = linalg.triangular_sylvester(A, B, C, trana, tranb)
    assert relative_error(X, solve_sylvester(op(A, trana), op(B, tranb), C)) < 1e-12


def test_schur_blocks_and_invariant_bases_match_scipys_eigenvectors(small_blocks):
    """On scipy's real Schur form T: one block per real eigenvalue and per conjugate pair, in order;
    each block's bases satisfy T Xk = Xk B, Yk^T T = B Yk^T, Yk^T Xk = I, and Xk Yk^T equals the
    spectral projector sum_i x_i y_i^H / (y_i^H x_i) over the block's eigenvalues, built from
    scipy.linalg.eig's left and right eigenvectors (first, middle and last blocks included)."""
    T, _ = schur(shifted(30, 14, 1.0), output="real")
    blocks = linalg.schur_blocks(T)
    lam, left, right = scipy.linalg.eig(T, left=True, right=True)
    assert [k for k, _ in blocks] == list(onp.cumsum([0] + [s for _, s in blocks])[:-1])
    assert sum(s for _, s in blocks) == len(T)
    assert sum(s == 2 for _, s in blocks) == onp.sum(lam.imag > 0) > 0
    for k, s in blocks:
        B = T[k : k + s, k : k + s]
        Xk, Yk = linalg.block_invariant_bases(T, k, s)
        assert onp.allclose(T @ Xk, Xk @ B, atol=1e-10) and onp.allclose(Yk.T @ T, B @ Yk.T, atol=1e-10)
        assert onp.allclose(Yk.T @ Xk, onp.eye(s), atol=1e-12)
        mine = [int(onp.argmin(onp.abs(lam - mu))) for mu in onp.linalg.eigvals(B)]
        projector = sum(onp.outer(right[:, i], left[:, i].conj()) / (left[:, i].conj() @ right[:, i]) for i in mine)
        assert relative_error(Xk @ Yk.T, projector) < 1e-10


@pytest.mark.parametrize("r, m", [(5, 4), (6, 0), (0, 5)])
def test_block_diagonal_lyapunov_matches_scipy(r, m):
    """The closed-form block solve against scipy's solve_continuous_lyapunov of the assembled Da
    (reals first, then the pairs' first parts, then their second parts), both orientations, for a
    right-hand side that is not symmetric."""
    rng = onp.random.default_rng(15)
    d, alpha, beta = rng.uniform(-3, -0.5, r), rng.uniform(-3, -0.5, m), rng.uniform(0.2, 2, m)
    N = r + 2 * m
    Da = onp.zeros((N, N))
    Da[:r, :r] = onp.diag(d)
    P, Q = onp.arange(r, r + m), onp.arange(r + m, N)
    Da[P, P], Da[Q, Q], Da[P, Q], Da[Q, P] = alpha, alpha, beta, -beta
    S = rng.standard_normal((N, N))
    solver = linalg.BlockDiagonalLyapunov(r, d, alpha, beta)
    assert relative_error(solver.solve(S), solve_continuous_lyapunov(Da, -S)) < 1e-12
    assert relative_error(solver.solve(S, transpose=True), solve_continuous_lyapunov(Da.T, -S)) < 1e-12


@pytest.mark.parametrize("equation", ["sylvester", "lyapunov"])
@pytest.mark.parametrize("blocked", [False, True])
def test_solve_gradient_matches_finite_differences(request, equation, blocked):
    """The gradient of a real scalar that is not linear in X = sylvester(A, B, C) or
    lyapunov(A, Q) w.r.t. each argument, along random directions, and entry by entry for a small
    problem."""
    if blocked:
        request.getfixturevalue("small_blocks")
    rng = onp.random.default_rng(23)
    m, n = (21, 17) if blocked else (5, 4)
    if equation == "sylvester":
        solve, args = sylvester, [shifted(m, 24, 6.0), shifted(n, 25, 6.0), rng.standard_normal((m, n))]
    else:
        solve, args = lyapunov, [shifted(m, 27, 6.0), rng.standard_normal((m, m))]
    W = rng.standard_normal(args[-1].shape)
    f = lambda *a: np.sum(W * solve(*a)) + np.sum(solve(*a) ** 2)  # noqa: E731
    for i in range(len(args)):
        along = lambda x, i=i: f(*(x if j == i else a for j, a in enumerate(args)))  # noqa: E731
        g = grad(f, i)(*args)
        if not blocked:
            assert relative_error(g, fd_gradient(along, args[i])) < 1e-8
        for _ in range(2):  # to 1e-9 of the scale |g| |E| (a directional derivative may cancel)
            E = rng.standard_normal(args[i].shape)
            scale = onp.linalg.norm(g) * onp.linalg.norm(E)
            assert abs(onp.sum(g * E) - derivative(along, args[i], E)) < 1e-9 * scale


def test_lyapunov_gradient_is_accurate_where_eig_is_not():
    """L1 of a nearly defective J (eigenvalue 0.5 split by 2e-10; computed eigenvalues ~1e-8 apart):
    through `lyapunov` the value matches scipy and the gradient matches finite differences to 1e-7
    without a warning; the same L1 through `eig` has a gradient far off."""
    rng = onp.random.default_rng(28)
    N = 8
    T = onp.triu(rng.standard_normal((N, N)) / onp.sqrt(N), 1)
    T[onp.diag_indices(N)] = rng.uniform(-0.5, 0.3, N)
    T[:2, :2] = [[0.5, 1.0], [1e-20, 0.5]]
    Qo, _ = onp.linalg.qr(rng.standard_normal((N, N)))
    J = Qo @ T @ Qo.T

    def l1_lyapunov(J):
        return np.trace(lyapunov((J - np.eye(N)) / TAU, -np.eye(N))) / (N * TAU)

    P = solve_continuous_lyapunov((J - onp.eye(N)) / TAU, -onp.eye(N))
    assert onp.isclose(l1_lyapunov(J), onp.trace(P) / (N * TAU), rtol=1e-10)
    E = rng.standard_normal((N, N))
    fd = derivative(l1_lyapunov, J, E)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        g = grad(l1_lyapunov)(J)
    assert onp.isclose(onp.sum(g * E), fd, rtol=1e-7, atol=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EigGradientWarning)
        g_eig = grad(l1_loss)(J)
    assert not onp.isclose(onp.sum(g_eig * E), fd, rtol=1e-3)


def test_singular_equation_gives_nan():
    """Eigenvalues 1 and -1: lambda_i + lambda_j = 0, so A X + X A^T = Q has no unique solution."""
    A = onp.diag([1.0, -1.0, 2.0])
    assert onp.all(onp.isnan(lyapunov(A, onp.eye(3))))
    assert onp.all(onp.isnan(sylvester(A, -A, onp.eye(3))))


@pytest.mark.parametrize("call, message", [
    (lambda: lyapunov(onp.ones((2, 3)), onp.ones((2, 3))), "lyapunov: A: expected a real square matrix"),
    (lambda: lyapunov(onp.eye(2) * 1j, onp.eye(2)), "lyapunov: A: expected a real square matrix"),
    (lambda: lyapunov(onp.eye(2), onp.eye(3)), r"lyapunov: expected a real Q of shape \(2, 2\)"),
    (lambda: sylvester(onp.eye(2), onp.eye(3), onp.eye(2)), r"sylvester: expected a real C of shape \(2, 3\)"),
])
def test_bad_input_is_one_clear_error(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_real_eig_is_numpys_eigendecomposition_in_lapacks_real_form():
    """real_eig (dgeev's wr, wi, vr) turned complex is numpy.linalg.eig's (lam, V), pairs included;
    eig(A, real_form) gives the same without a second decomposition; bad input is refused like numpy's."""
    from tcnet.linalg import complex_eig, real_eig
    A = onp.random.default_rng(3).standard_normal((40, 40))
    wr, wi, vr = real_eig(A)
    assert onp.sum(wi > 0) > 5 and vr.dtype == float
    lam, V = complex_eig(wr, wi, vr)
    ref_lam, ref_V = onp.linalg.eig(A)
    onp.testing.assert_allclose(lam, ref_lam, rtol=1e-12, atol=1e-13)
    onp.testing.assert_allclose(V, ref_V, rtol=1e-10, atol=1e-12)
    onp.testing.assert_allclose(A @ V, V * lam, atol=1e-12)
    for got, want in zip(eig(A, (wr, wi, vr)), (lam, V)):
        assert onp.array_equal(got, want)
    assert [x.shape for x in real_eig(onp.zeros((0, 0)))] == [(0,), (0,), (0, 0)]
    with pytest.raises(onp.linalg.LinAlgError, match="infs or NaNs"):
        real_eig(onp.full((3, 3), onp.nan))
