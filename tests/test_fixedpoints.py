"""The fixed-point finder (tcnet.fixedpoints) on networks whose fixed points are known: two
uncoupled bistable tanh units (nine fixed points, in closed form per unit), a linear network
(only 0), and a tanh network built with planted attractors; eigenvalues against a central
finite-difference Jacobian; the file and the table."""
import numpy as np
import pytest
from scipy.optimize import brentq

import tcnet
from tcnet import store
from tcnet.reader import load_fixed_points
from tcnet_plugins.rnn.dynamics import RateNetwork


def network(J, phi="tanh", b=None):
    N = len(J)
    net = RateNetwork.create(N=N, phi=phi, seed=0)
    return RateNetwork({**net.arrays, "J": np.asarray(J, dtype=float), "b": np.zeros(N) if b is None else b},
                       net.config, 0)


def fd_eigenvalues(net, x, h=1e-6):
    """Eigenvalues of the central finite-difference Jacobian of the network's rhs at x."""
    params = net.params(net.vector())
    f = lambda y: np.asarray(net.rhs(y[None], None, params))[0]  # noqa: E731
    J = np.column_stack([(f(x + h * e) - f(x - h * e)) / (2 * h) for e in np.eye(len(x))])
    lam = np.linalg.eigvals(J)
    return lam[np.lexsort((lam.imag, lam.real))]


def check_spectra(net, points):
    for k, x in enumerate(points.x):
        lam = points.eigenvalues[k]
        np.testing.assert_allclose(lam[np.lexsort((lam.imag, lam.real))], fd_eigenvalues(net, x), rtol=1e-6,
                                   atol=1e-6 * np.abs(lam).max())


def test_two_bistable_units_have_nine_fixed_points():
    """x_i = 2 tanh(x_i) per unit: 0 (unstable, slope 2) and +-x_s (stable, slope 2 (1 - tanh^2))."""
    net = network(2.0 * np.eye(2))
    x_s = brentq(lambda x: x - 2.0 * np.tanh(x), 1.0, 3.0)
    points = net.fixed_points(np.random.default_rng(0).uniform(-3.0, 3.0, size=(60, 2)))
    expected = np.array([(a, b) for a in (-x_s, 0.0, x_s) for b in (-x_s, 0.0, x_s)])
    assert points.fixed.all() and len(points.x) == 9
    order = np.lexsort((points.x[:, 1], points.x[:, 0]))
    np.testing.assert_allclose(points.x[order], expected, atol=1e-12)
    unstable = (np.abs(points.x) < 0.5).sum(axis=1)  # one unstable direction per unit at 0
    np.testing.assert_array_equal(points.unstable, unstable)
    np.testing.assert_array_equal(points.stable, unstable == 0)
    check_spectra(net, points)


def test_a_linear_network_has_only_the_origin():
    rng = np.random.default_rng(1)
    J = rng.standard_normal((6, 6)) * 0.4
    net = network(J, phi="linear")
    points = net.fixed_points(rng.standard_normal((20, 6)) * 3.0)
    assert len(points.x) == 1 and points.fixed[0]
    np.testing.assert_allclose(points.x[0], 0.0, atol=1e-12)
    assert bool(points.stable[0]) == bool(np.all(np.linalg.eigvals(J).real < 1))
    check_spectra(net, points)


def planted(N=12, P=3, seed=2):
    """A tanh network whose fixed points include P planted saturated patterns X (P, N): J = X^T
    pinv(tanh(X)^T), the least-norm J with J tanh(x_p) = x_p."""
    rng = np.random.default_rng(seed)
    X = 2.5 * rng.choice((-1.0, 1.0), size=(P, N))
    J = X.T @ np.linalg.pinv(np.tanh(X).T)
    return network(J), X


def test_planted_attractors_are_recovered_from_the_networks_trajectories():
    net, X = planted()
    rng = np.random.default_rng(3)
    t = np.linspace(0.0, 0.2, 41)
    x0 = np.concatenate([X + 0.8 * rng.standard_normal(X.shape), rng.standard_normal((6, X.shape[1]))])
    traj = net.simulate(x0, t).reshape((-1, X.shape[1]))
    starts = traj[rng.integers(0, len(traj), size=40)]
    points = net.fixed_points(starts)
    for x in X:
        d = np.max(np.abs(points.x - x), axis=1)
        k = int(np.argmin(d))
        assert d[k] < 1e-10 and points.fixed[k] and points.stable[k]
    check_spectra(net, points)


def test_fixed_points_file_and_table(tmp_path):
    net = network(2.0 * np.eye(2))
    points = net.fixed_points(np.random.default_rng(0).uniform(-3.0, 3.0, size=(30, 2)))
    path = tmp_path / "fp.h5"
    store.save_fixed_points(path, points, network="two-units")
    table = load_fixed_points(path)
    assert len(table) == 9 and table.attrs["network"] == "two-units"
    assert (table["kind"] == "fixed").all() and table["stable"].sum() == 4
    np.testing.assert_array_equal(table[["x0", "x1"]].to_numpy(), points.x)
    with pytest.raises(tcnet.ConfigError, match="starts"):
        net.fixed_points(np.zeros(3))


def test_fixed_point_figure_projects_on_the_trajectories_principal_components(tmp_path):
    from tcnet_plugins.rnn.figures import plot_fixed_points

    net, X = planted(N=8, P=2, seed=4)
    rng = np.random.default_rng(5)
    traj = net.simulate(X + 0.5 * rng.standard_normal(X.shape), np.linspace(0.0, 0.1, 21))
    points = net.fixed_points(traj.reshape((-1, 8))[::7])
    proj = plot_fixed_points(traj, points, tmp_path / "fp.png")
    assert (tmp_path / "fp.png").stat().st_size > 0
    flat = traj.reshape((-1, 8))
    cov = np.cov(flat.T)  # the principal axes from the covariance's eigenvectors, independently of the SVD
    lam, vec = np.linalg.eigh(cov)
    axes = vec[:, ::-1][:, :2]
    expected = (points.x - flat.mean(axis=0)) @ axes
    np.testing.assert_allclose(np.abs(proj), np.abs(expected), rtol=1e-8, atol=1e-10)  # up to each axis' sign
