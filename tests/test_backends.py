"""Backends for the preparatory-network losses (tcnet_plugins.preparatory.backends).

Every reference is independent of the backends: the generic path (autograd through
tcnet.linalg.eig with the DESIGN.md eigenbasis formulas, written out here), scipy's
solve_continuous_lyapunov for the values, and central finite differences for the gradients.
"""
import warnings

import autograd.numpy as anp
import numpy as np
import pytest
from autograd import grad
from scipy.linalg import solve_continuous_lyapunov

from tcnet import ConfigError, Objective, Term
from tcnet.linalg import eig, lyapunov
from tcnet_plugins.preparatory import Decay, LinearDecay, Stability
from tcnet_plugins.preparatory.dynamics import BACKENDS
from tcnet_plugins.preparatory.backends import (AUTO_CONDITION, HAND_DERIVED, factorize, low_rank_losses,
                                                preparatory_losses)
from tcnet_plugins.smoothness import Smoothness

TAU = 0.01
WEIGHTS = np.array([1.0, 1e5, 0.01])  # L1 + alpha L2 + beta L3 of the published runs


def generic_losses(J, w, tau):
    """(L1, L2, L3) by the DESIGN.md formulas through tcnet.linalg.eig (autograd's generic path)."""
    lam, R = eig(J)
    N = len(lam)
    gamma = (lam - 1) / tau
    R_inv = anp.linalg.inv(R)
    M = R_inv @ anp.conj(R_inv).T
    F = -1 / (gamma[:, None] + anp.conj(gamma)[None, :])
    G = gamma[:, None] * anp.conj(gamma)[None, :] * F
    RH = anp.conj(R).T
    L1 = anp.real(anp.trace(R @ (M * F) @ RH)) / (N * tau)
    L2 = anp.sum(anp.maximum(anp.real(gamma), 0) ** 2)
    u = RH @ (w + 0j)
    L3 = tau * anp.real(anp.conj(u) @ (M * G) @ u)
    return anp.stack([L1, L2, L3])


def network(N, seed, radius=0.8):
    """J with entries N(0, radius^2/N) (spectral radius about `radius`) and a readout w."""
    rng = np.random.default_rng(seed)
    return radius * rng.standard_normal((N, N)) / np.sqrt(N), rng.standard_normal(N) / np.sqrt(N)


def rel(a, b):
    return np.linalg.norm(np.ravel(a - b)) / np.linalg.norm(np.ravel(b))


def total(losses, weights=WEIGHTS):
    return lambda J, w: anp.dot(weights, losses(J, w))


@pytest.mark.parametrize("backend", HAND_DERIVED)
@pytest.mark.parametrize("N, seed, radius", [(10, 0, 0.8), (30, 1, 0.9), (100, 2, 0.8), (40, 3, 1.25)])
def test_backend_matches_generic_eig_path(backend, N, seed, radius):
    """Values, the weighted gradient w.r.t. J and w, and each term's own J-gradient agree with the
    generic path to 1e-8 relative (radius 1.25: some unstable eigenvalues, so L2 and its gradient
    are exercised)."""
    J, w = network(N, seed, radius)
    unstable = np.sum(np.linalg.eigvals(J).real > 1)
    assert (unstable > 0) == (radius > 1)
    fast = lambda J, w: preparatory_losses(J, w, TAU, backend)  # noqa: E731
    slow = lambda J, w: generic_losses(J, w, TAU)  # noqa: E731
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", np.exceptions.ComplexWarning)
        ref_values = slow(J, w)
        ref_J = grad(total(slow))(J, w)
        ref_w = grad(total(slow), 1)(J, w)
        ref_terms = [grad(total(slow, e))(J, w) for e in np.eye(3)]
    values = fast(J, w)
    assert np.allclose(values, ref_values, rtol=1e-8, atol=0)
    assert rel(grad(total(fast))(J, w), ref_J) < 1e-8
    assert rel(grad(total(fast), 1)(J, w), ref_w) < 1e-8
    for k, e in enumerate(np.eye(3)):
        if k == 1 and unstable == 0:
            assert np.all(grad(total(fast, e))(J, w) == 0) and values[1] == 0
        else:
            assert rel(grad(total(fast, e))(J, w), ref_terms[k]) < 1e-8


@pytest.mark.parametrize("N, seed", [(10, 4), (60, 5)])
def test_backends_agree_with_each_other(N, seed):
    J, w = network(N, seed, 1.1)
    f, l = (lambda J, w, b=b: preparatory_losses(J, w, TAU, b) for b in ("fused", "lyapunov"))
    assert np.allclose(f(J, w), l(J, w), rtol=1e-8, atol=0)
    assert rel(grad(total(f))(J, w), grad(total(l))(J, w)) < 1e-8


@pytest.mark.parametrize("backend", HAND_DERIVED)
def test_values_match_scipy_lyapunov_solve(backend):
    """L1 = Tr(P)/(N tau), L3 = tau w^T A P A^T w with A P + P A^T + I = 0; L2 from eigvals."""
    J, w = network(50, 6, 1.2)
    A = (J - np.eye(50)) / TAU
    P = solve_continuous_lyapunov(A, -np.eye(50))
    gamma = (np.linalg.eigvals(J) - 1) / TAU
    expected = [np.trace(P) / (50 * TAU), np.sum(np.maximum(gamma.real, 0) ** 2), TAU * w @ A @ P @ A.T @ w]
    assert expected[1] > 0
    assert np.allclose(preparatory_losses(J, w, TAU, backend), expected, rtol=1e-9, atol=0)


def central_difference(f, x, direction, h):
    """4th-order central difference of f at x along `direction`."""
    return (8 * (f(x + h * direction) - f(x - h * direction))
            - (f(x + 2 * h * direction) - f(x - 2 * h * direction))) / (12 * h)


def through_J(J0, U, V, w, backend):
    """The losses of J0 + U V by autograd's chain rule through the N x N J."""
    return preparatory_losses(J0 + U @ V, w, TAU, backend)


def low_rank(J0, U, V, w, backend):
    """The same by the low-rank primitive (gradients for U and V without an N x N grad_J)."""
    return low_rank_losses(J0, U, V, w, factorize(J0 + U @ V, w, TAU, backend))


@pytest.mark.parametrize("backend", HAND_DERIVED)
@pytest.mark.parametrize("via", [through_J, low_rank])
def test_gradient_through_low_rank_parametrization_matches_finite_differences(backend, via):
    """J = J0 + U V: the primitive composes with autograd, so grad w.r.t. U, V, w follows by the
    chain rule, or by `low_rank_losses`' own VJPs; each term checked along random directions (with
    unstable eigenvalues, so L2 counts; terms separately, since alpha L2 would swamp the others'
    differences in roundoff)."""
    rng = np.random.default_rng(7)
    N, n = 12, 3
    J0, w = network(N, 8, 1.2)
    U, V = rng.standard_normal((N, n)) / 3, rng.standard_normal((n, N)) / 3
    assert preparatory_losses(J0 + U @ V, w, TAU, backend)[1] > 0
    args = [U, V, w]
    for e in np.eye(3):

        def loss(U, V, w, e=e):
            return anp.dot(e, via(J0, U, V, w, backend))

        for i in range(3):
            d = rng.standard_normal(args[i].shape)

            def along(x, i=i, loss=loss):
                return loss(*(x if j == i else a for j, a in enumerate(args)))

            fd = central_difference(along, args[i], d, 1e-4)
            exact = np.sum(grad(loss, i)(*args) * d)
            if e[2] == 0 and i == 2:  # L1, L2 do not depend on w
                assert exact == 0 and fd == 0
            else:
                assert np.isclose(exact, fd, rtol=1e-7, atol=0)


@pytest.mark.parametrize("backend", HAND_DERIVED)
@pytest.mark.parametrize("N, n, radius", [(40, 4, 0.8), (60, 6, 1.2)])
def test_low_rank_gradients_equal_the_chain_rule_through_J(backend, N, n, radius):
    """`low_rank_losses` differentiates J0 + U V without forming grad_J: its gradients w.r.t. J0,
    U, V and w (the weighted objective, and each term) equal the chain rule through J to rounding."""
    rng = np.random.default_rng(N)
    J0, w = network(N, N + 1, radius)
    U, V = rng.standard_normal((N, n)) / np.sqrt(N), rng.standard_normal((n, N)) / np.sqrt(N)
    assert (preparatory_losses(J0 + U @ V, w, TAU, backend)[1] > 0) == (radius > 1)
    for weights in [WEIGHTS, *np.eye(3)]:
        for i in range(4):
            exact, fast = (grad(lambda *a, f=f: anp.dot(weights, f(*a, backend)), i)(J0, U, V, w)
                           for f in (through_J, low_rank))
            assert rel(fast, exact) < 1e-11 if np.any(exact) else not np.any(fast)


def nearly_defective(eps, N=8, seed=9, at=0.5):
    """A J whose eigenvalue `at` (0.5: J is stable) is split by 2 sqrt(eps): the block
    [[at, 1], [eps, at]] plus a random stable upper-triangular rest, rotated by a random orthogonal
    matrix."""
    rng = np.random.default_rng(seed)
    B = np.triu(rng.standard_normal((N, N)) / np.sqrt(N), 1)
    B[np.diag_indices(N)] = rng.uniform(-0.5, 0.3, N)
    B[:2, :2] = [[at, 1.0], [eps, at]]
    Q, _ = np.linalg.qr(rng.standard_normal((N, N)))
    return Q @ B @ Q.T, rng.standard_normal(N) / np.sqrt(N)


def test_lyapunov_backend_is_accurate_where_the_eig_paths_are_not():
    """Eigenvalue 0.5 split by 2e-10, i.e. a nearly defective J (computed eigenvalues then differ
    by ~1e-8, the square root of the rounding error): the Lyapunov backend's values match scipy's
    Lyapunov solve and its gradient matches finite differences; the generic eig VJP is off by many
    orders of magnitude, and the fused eig path (eigenvector condition ~1e8) gets even the value wrong."""
    J, w = nearly_defective(1e-20)
    lam = np.linalg.eigvals(J)
    gaps = np.abs(lam[:, None] - lam[None, :]) + np.diag(np.full(len(lam), np.inf))
    assert gaps.min() < 1e-7 and lam.real.max() < 1
    N = len(J)
    A = (J - np.eye(N)) / TAU
    P = solve_continuous_lyapunov(A, -np.eye(N))
    expected = np.array([np.trace(P) / (N * TAU), 0.0, TAU * w @ A @ P @ A.T @ w])

    lyap = lambda J: anp.dot(WEIGHTS, preparatory_losses(J, w, TAU, "lyapunov"))  # noqa: E731
    assert np.allclose(preparatory_losses(J, w, TAU, "lyapunov"), expected, rtol=1e-9, atol=0)
    g = grad(lyap)(J)
    assert np.all(np.isfinite(g))
    d = np.random.default_rng(10).standard_normal((N, N))
    exact_fd = central_difference(lyap, J, d, 1e-4)
    assert np.isclose(np.sum(g * d), exact_fd, rtol=1e-7, atol=0)

    generic = lambda J: anp.dot(WEIGHTS, generic_losses(J, w, TAU))  # noqa: E731
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        eig_directional = np.sum(grad(generic)(J) * d)
    assert not np.isfinite(eig_directional) or abs(eig_directional - exact_fd) > 1e3 * abs(exact_fd)
    fused_values = preparatory_losses(J, w, TAU, "fused")
    assert abs(fused_values[0] - expected[0]) > 1e-3 * abs(expected[0])


def test_unknown_backend_is_a_config_error():
    J, w = network(4, 0)
    with pytest.raises(ConfigError, match="backend must be one of auto, fused, lyapunov"):
        preparatory_losses(J, w, TAU, "torch")


def published_objective(net):
    """L1 + 1e5 L2 + 0.01 L3 as `tcnet train` builds it."""
    return Objective(net, [Term(Decay(), 1.0), Term(Stability(), 1e5), Term(Smoothness(), 0.01)])


def test_linear_decay_backend_setting_selects_the_same_objective():
    """The dynamics' `backend` setting: auto, fused and lyapunov give the generic path's objective
    value, term values and gradient w.r.t. the trainable U, V (through the normalization) to 1e-8."""

    def evaluate(backend):
        net = LinearDecay.create(seed=3, N=40, n_frac=0.2, backend=backend)
        return published_objective(net).evaluate(net.vector())

    ref = evaluate("eig")
    for backend in HAND_DERIVED:
        ev = evaluate(backend)
        assert np.isclose(ev.value, ref.value, rtol=1e-8, atol=0)
        assert all(np.isclose(ev.terms[k], ref.terms[k], rtol=1e-8, atol=1e-12) for k in ref.terms)
        assert rel(ev.grad, ref.grad) < 1e-8
    with pytest.raises(ConfigError, match="backend"):
        LinearDecay.create(backend="torch")


def test_auto_takes_the_fused_path_on_well_conditioned_networks():
    """Random networks (N = 10..200) have eigenvalue condition numbers far below AUTO_CONDITION:
    auto is the fused path, bit for bit."""
    for N, seed in ((10, 12), (60, 13), (200, 14)):
        J, w = network(N, seed, 1.1)
        factor = factorize(J, w, TAU)
        assert factor.path == "fused" and 1 <= factor.condition < AUTO_CONDITION / 5
        assert np.array_equal(preparatory_losses(J, w, TAU), preparatory_losses(J, w, TAU, "fused"))
        assert np.array_equal(grad(total(lambda J, w: preparatory_losses(J, w, TAU)))(J, w),
                              grad(total(lambda J, w: preparatory_losses(J, w, TAU, "fused")))(J, w))


def test_eigenvalue_condition_numbers_match_the_left_and_right_eigenvectors():
    """`condition` = max_i ||y_i|| ||x_i|| / |y_i^H x_i| from numpy's left eigenvectors (rows of
    inv(R)) and right ones, here with complex pairs and real eigenvalues."""
    J, w = network(30, 15, 1.0)
    lam, R = np.linalg.eig(J)
    assert np.any(lam.imag != 0) and np.any(lam.imag == 0)
    Y = np.linalg.inv(R).conj().T  # columns y_i with y_i^H x_j = delta_ij
    kappa = np.linalg.norm(Y, axis=0) * np.linalg.norm(R, axis=0) / np.abs(np.sum(Y.conj() * R, axis=0))
    assert np.isclose(factorize(J, w, TAU).condition, kappa.max(), rtol=1e-10)


def network_with_J(J, w, n_frac=0.25):
    """A default-configured linear_decay network whose effective J0 + U V equals the given J."""
    net = LinearDecay.create(seed=0, N=len(J), n_frac=n_frac)
    s = net.state()
    arrays = {**net.arrays, "J0": J - np.array(s.U) @ np.array(s.V), "w": w}
    return LinearDecay(arrays, net.config, 0)


def test_default_is_accurate_where_an_eigenvalue_is_nearly_repeated():
    """The nearly defective J of the test above, as `tcnet train` would see it (default backend,
    published weights): auto takes the Lyapunov path (no EigGradientWarning), the terms match
    scipy's Lyapunov solve and the gradient w.r.t. U, V matches central differences to 1e-7."""
    J, w = nearly_defective(1e-20)
    net = network_with_J(J, w)
    assert net.config["backend"] == "auto"
    assert np.allclose(np.array(net.state().J), J, rtol=0, atol=1e-14)
    obj = published_objective(net)
    theta = net.vector()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an EigGradientWarning (or any other) fails the test
        ev = obj.evaluate(theta)
    assert net.state(theta).path == "lyapunov" and factorize(J, w, TAU, "fused").condition > 1e6
    N = len(J)
    A = (J - np.eye(N)) / TAU
    P = solve_continuous_lyapunov(A, -np.eye(N))
    assert np.isclose(ev.terms["decay"], np.trace(P) / (N * TAU), rtol=1e-9)
    assert np.isclose(ev.terms["smoothness"], TAU * w @ A @ P @ A.T @ w, rtol=1e-9)
    for seed in (16, 17):
        d = np.random.default_rng(seed).standard_normal(theta.shape)
        fd = central_difference(obj, theta, d, 1e-4)
        assert np.isclose(ev.grad @ d, fd, rtol=1e-7, atol=0)


def test_a_loss_reading_the_eigenvalues_shares_the_states_eigendecomposition(monkeypatch):
    """A user term reading state.lam (docs/PLUGINS.md style) next to the built-in terms: one
    eigendecomposition (LAPACK dgeev, through numpy.linalg.eig or tcnet.linalg.real_eig) per
    evaluation with the default backend, and the gradient of the sum is the sum of the generic
    path's gradients (checked against backend "eig")."""
    from scipy.linalg import lapack
    from tcnet import Loss

    class Abscissa(Loss):
        name = "abscissa"

        def __call__(self, state):
            return anp.sum(anp.real(state.lam) ** 3)

    calls = []
    numpy_eig, dgeev = np.linalg.eig, lapack.dgeev
    monkeypatch.setattr(np.linalg, "eig", lambda a: calls.append(1) or numpy_eig(a))
    monkeypatch.setattr(lapack, "dgeev", lambda *a, **k: calls.append(1) or dgeev(*a, **k))

    def evaluate(backend):
        net = LinearDecay.create(seed=4, N=30, backend=backend)
        terms = list(published_objective(net).terms) + [Term(Abscissa(), 0.5)]
        return Objective(net, terms).evaluate(net.vector())

    ev = evaluate("auto")
    assert len(calls) == 1
    ref = evaluate("eig")
    assert np.isclose(ev.value, ref.value, rtol=1e-10) and rel(ev.grad, ref.grad) < 1e-8


def lyapunov_primitive_losses(J, w, tau):
    """(L1, L3) through the autograd primitive tcnet.linalg.lyapunov: P = lyapunov(A, -I)."""
    N = len(J)
    A = (J - anp.eye(N)) / tau
    P = lyapunov(A, -anp.eye(N))
    b = anp.dot(A.T, w)
    return anp.stack([anp.trace(P) / (N * tau), tau * anp.dot(b, anp.dot(P, b))])


@pytest.mark.parametrize("N, seed", [(20, 18), (130, 19)])
def test_lyapunov_backend_is_the_adjoint_method_of_tcnet_linalg_lyapunov(N, seed):
    """L1, L3 and their gradients w.r.t. J and w from the lyapunov backend equal autograd through
    the primitive tcnet.linalg.lyapunov (its own VJP, no fusion) to 1e-10 (N = 130: the blocked
    triangular solver recurses)."""
    J, w = network(N, seed, 0.9)
    weights = np.array([1.0, 0.0, 0.3])
    backend = lambda J, w: anp.dot(weights, preparatory_losses(J, w, TAU, "lyapunov"))  # noqa: E731
    primitive = lambda J, w: anp.dot(weights[[0, 2]], lyapunov_primitive_losses(J, w, TAU))  # noqa: E731
    assert np.allclose(preparatory_losses(J, w, TAU, "lyapunov")[[0, 2]], lyapunov_primitive_losses(J, w, TAU),
                       rtol=1e-10, atol=0)
    for i in (0, 1):
        assert rel(grad(backend, i)(J, w), grad(primitive, i)(J, w)) < 1e-10


def test_the_path_of_every_step_is_recorded_in_the_stored_history(tmp_path):
    """A run of the default objective from the nearly defective J: each step's extra column
    lyapunov_path, stored in HDF5 and read back by tcnet.open(...).history, is the path of the
    state at that step's point (1 at the start, where auto must take the Lyapunov path)."""
    import tcnet
    from tcnet.store import RunWriter

    J, w = nearly_defective(1e-20)
    net = network_with_J(J, w)
    spec = {"dynamics": {"name": "linear_decay", **net.config},
            "loss": [{"name": "decay"}, {"name": "stability", "weight": 1e5}, {"name": "smoothness", "weight": 0.01}],
            "optimizer": {"name": "staged", "stages": [{"name": "adam", "steps": 2, "lr": 0.01},
                                                       {"name": "lbfgs", "max_iter": 2}]}}
    path = tmp_path / "run.h5"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = tcnet.run(spec, dynamics=net, recorders=[RunWriter(path)], progress=False)
    history = tcnet.open(path).history(tcnet.store.list_runs(path)[0])
    expected = [float(net.state(step.x).path == "lyapunov") for step in result.history.steps]
    assert expected[0] == 1.0 and len(history) == len(expected) > 3
    np.testing.assert_array_equal(history["extra/lyapunov_path"], expected)


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_step_where_decay_is_a_divergent_integral_is_marked(tmp_path, backend):
    """A run from an unstable network (N = 30, seed 3) that training stabilizes: the stored history
    column decay_diverges is 1 exactly at the steps where numpy.linalg.eigvals of that step's J
    (built from the step's point in plain numpy) has an eigenvalue with real part >= 1, on every
    path, and no eigenvalue is so close to 1 that rounding could decide it. The losses are those
    of the same run recorded without the store (the marker changes no value)."""
    import tcnet
    from test_linear_decay import effective_J
    from tcnet.store import RunWriter
    from tcnet_plugins.preparatory.cli import recipe, run_spec

    spec = run_spec({"name": "linear_decay", "seed": 3, "N": 30, "n_frac": 0.2, "backend": backend},
                    alpha=1e5, beta=0.01, optimizer=recipe(adam_steps=4, lbfgs_iters=6))
    path = tmp_path / "run.h5"
    result = tcnet.run(spec, recorders=[RunWriter(path)], progress=False)
    history = tcnet.open(path).history(tcnet.store.list_runs(path)[0])
    net = result.initial
    abscissa = np.array([np.linalg.eigvals(effective_J(net.with_vector(s.x))).real.max()
                         for s in result.history.steps])
    assert np.min(np.abs(abscissa - 1)) > 1e-6
    expected = (abscissa >= 1).astype(float)
    assert 0 < expected.sum() < len(expected)  # both kinds of step
    np.testing.assert_array_equal(history["extra/decay_diverges"], expected)
    np.testing.assert_array_equal(history["loss"], [s.loss for s in result.history.steps])


def test_auto_marks_a_divergent_decay_on_its_lyapunov_path():
    """The nearly defective J of `nearly_defective` with its split eigenvalue at 1.5 (unstable) and
    at 0.5 (stable): auto takes the Lyapunov path, and marks the first only, as numpy.linalg.eigvals
    says (ev.columns is what the history records)."""
    for at in (1.5, 0.5):
        J, w = nearly_defective(1e-20, at=at)
        diverges = float(np.linalg.eigvals(J).real.max() >= 1)
        net = network_with_J(J, w)
        ev = published_objective(net).evaluate(net.vector())
        assert ev.columns == {"lyapunov_path": 1.0, "decay_diverges": diverges}
        assert diverges == (at > 1)


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_published_initial_loss_is_unchanged_and_marked(backend):
    """N = 500, seed 2, legacy init, L1 + 1e5 L2 + 0.01 L3 (examples/reproduce_preparatory_notebook.py):
    on every path the initial loss is the published 847949.969712 to every digit printed (the
    published figure is truncated; rounded it is 847949.969713), and the step is marked: J has an
    eigenvalue with real part above 1 (numpy.linalg.eigvals), so L1 there is the closed form of a
    divergent integral."""
    import tcnet
    from test_linear_decay import effective_J
    from tcnet_plugins.preparatory.cli import recipe, run_spec

    spec = run_spec({"name": "linear_decay", "seed": 2, "N": 500, "n_frac": 0.1, "tau": 0.01,
                     "normalization": "raw_weights", "init": "legacy", "backend": backend},
                    alpha=1e5, beta=0.01, optimizer=recipe(adam_steps=0, lbfgs_iters=0))
    result = tcnet.run(spec, progress=False)
    first = result.history.steps[0]
    assert int(first.loss * 1e6) == 847949969712
    assert first.extra["decay_diverges"] == 1.0 and np.linalg.eigvals(effective_J(result.initial)).real.max() > 1


def test_a_study_file_sets_the_backend(tmp_path, capsys):
    """`dynamics.backend` in a study file's grid (and unset: the default): every run is computed on
    its path (the saved spec and network, each step's lyapunov_path) and ends where the same spec
    run on the generic eig path ends (final loss to 1e-8). A backend the plugin does not have
    is refused before any run, in one line naming the grid point and the setting."""
    import tcnet
    from tcnet.cli import main

    toml = tmp_path / "s.toml"
    head = ('[study]\nname = "backends"\nseed = 5\n[base.dynamics]\nname = "linear_decay"\nN = 30\n'
            '[[base.loss]]\nname = "decay"\n[[base.loss]]\nname = "stability"\nweight = 1e5\n'
            '[[base.loss]]\nname = "smoothness"\nweight = 0.01\n[base.optimizer]\nname = "staged"\n'
            '[[base.optimizer.stages]]\nname = "adam"\nsteps = 3\nlr = 0.01\n'
            '[[base.optimizer.stages]]\nname = "lbfgs"\nmax_iter = 5\n')
    toml.write_text(head + '[grid]\n"dynamics.backend" = ["auto", "fused", "lyapunov"]\n')
    out = tmp_path / "s.h5"
    assert main(["study", str(toml), "-o", str(out), "--workers", "1", "--no-progress"]) == 0
    capsys.readouterr()
    f = tcnet.open(out)
    backends = []
    for run_id in tcnet.store.list_runs(out):
        rec = f.record(run_id)
        backend = rec.spec["dynamics"]["backend"]
        assert rec.final.config["backend"] == backend
        path = (f.history(run_id)["extra/lyapunov_path"]).to_numpy()
        assert len(path) > 5 and np.all(path == (1.0 if backend == "lyapunov" else 0.0))
        generic = tcnet.run({**rec.spec, "dynamics": {**rec.spec["dynamics"], "backend": "eig"}}, progress=False)
        assert np.isclose(rec.history["loss"][-1], generic.history.steps[-1].loss, rtol=1e-8, atol=0)
        backends.append(backend)
    assert sorted(backends) == ["auto", "fused", "lyapunov"]

    toml.write_text(head + '[grid]\n"dynamics.backend" = ["fused", "torch"]\n')
    assert main(["study", str(toml), "-o", str(tmp_path / "bad.h5"), "--no-progress"]) == 2  # before any run
    assert capsys.readouterr().err == ("tcnet study: run at dynamics.backend = \"torch\": linear_decay: backend must be "
                                       "one of 'eig', 'auto', 'fused', 'lyapunov', got 'torch'\n")
    assert not (tmp_path / "bad.h5").exists()


@pytest.mark.parametrize("axis", [0, 1])
def test_rescaled_primitive_is_the_traced_normalization_to_the_last_bit(axis):
    """linear_decay's `rescaled` (one primitive for U's columns, V's rows) gives the value and the
    gradient of the traced expression X / sqrt(sum(X * X)) * scale exactly (so runs stored before
    it reproduce), and its gradient matches central differences."""
    from tcnet_plugins.preparatory.dynamics import rescaled

    rng = np.random.default_rng(18)
    X, C = rng.standard_normal((7, 5)), rng.standard_normal((7, 5))
    traced = lambda X: anp.sum(C * (X / anp.sqrt(anp.sum(X * X, axis=axis, keepdims=True)) * 1.7))  # noqa: E731
    primitive = lambda X: anp.sum(C * rescaled(X, axis, 1.7))  # noqa: E731
    assert traced(X) == primitive(X)
    assert np.array_equal(grad(traced)(X), grad(primitive)(X))
    d = rng.standard_normal(X.shape)
    assert np.isclose(np.sum(grad(primitive)(X) * d), central_difference(primitive, X, d, 1e-5), rtol=1e-8)
