"""Preparatory networks (linear_decay, decay, stability, smoothness): every number is checked
against an independent computation (Lyapunov solves, scipy.linalg.expm, numpy.linalg.eigvals,
central finite differences, numpy's legacy global generator)."""
import numpy as np
import pytest
import scipy.linalg as sl

from tcnet import ConfigError, Objective, Term
from tcnet.plugins import registry
from tcnet_plugins.preparatory.analysis import decay_time, relative_sq_norm

REG = registry()
LinearDecay = REG.get("dynamics", "linear_decay")


def stable_network(N, seed, normalization="none"):
    """A random network made stable by shrinking J0 (and V where it is not normalized); the
    stability is checked, not assumed."""
    d = LinearDecay.create(seed=seed, N=N, n_frac=0.2 if normalization == "none" else 0.1,
                           normalization=normalization, init="default")
    a = dict(d.arrays)
    a["J0"] = (0.5 if normalization == "none" else 0.2) * a["J0"]
    a["V"] = 0.5 * a["V"]
    d = LinearDecay(a, d.config, seed)
    assert np.max(np.linalg.eigvals(effective_J(d)).real) < 1
    return d


def effective_J(d):
    """J = J0 + U V with the normalization of the module docstring, in plain numpy."""
    U, V = d.arrays["U"], d.arrays["V"]
    N, n = U.shape
    scheme = d.config["normalization"]
    U = U / np.linalg.norm(U, axis=0)
    if scheme != "none":
        s = N**-0.5 if scheme == "raw_weights" else (n * N) ** -0.25
        U = U * np.sqrt(N) * s
        V = V / np.linalg.norm(V, axis=1, keepdims=True) * np.sqrt(N) * s
    return d.arrays["J0"] + U @ V


def objective(d, alpha=1e5, beta=0.01):
    return Objective(d, [Term(REG.get("loss", "decay")()), Term(REG.get("loss", "stability")(), alpha),
                         Term(REG.get("loss", "smoothness")(), beta)])


@pytest.mark.parametrize("N, normalization", [(10, "none"), (50, "raw_weights"), (120, "none"),
                                              (200, "raw_weights")])
def test_L1_L3_equal_lyapunov_values(N, normalization):
    d = stable_network(N, seed=N, normalization=normalization)
    tau, w = d.config["tau"], d.arrays["w"]
    A = (effective_J(d) - np.eye(N)) / tau
    P = sl.solve_continuous_lyapunov(A, -np.eye(N))  # A P + P A^T + I = 0
    s = d.state()
    assert s.decay == pytest.approx(np.trace(P) / (N * tau), rel=1e-9)
    assert s.smoothness == pytest.approx(tau * w @ A @ P @ A.T @ w, rel=1e-9)
    assert s.stability == 0.0


def test_stability_is_sum_of_squared_positive_real_parts():
    d = LinearDecay.create(seed=3, N=60)  # raw weights at init: several eigenvalues right of 1
    gamma = (np.linalg.eigvals(effective_J(d)) - 1) / d.config["tau"]
    expected = np.sum(np.maximum(gamma.real, 0) ** 2)
    assert expected > 0
    assert d.state().stability == pytest.approx(expected, rel=1e-10)


def central_difference(f, x, direction, h):
    return (f(x + h * direction) - f(x - h * direction)) / (2 * h)


@pytest.mark.parametrize("normalization", ["raw_weights", "perturbation_weights", "none"])
def test_full_gradient_matches_central_differences(normalization):
    d = LinearDecay.create(seed=5, N=12, n_frac=0.25, normalization=normalization, init="default")
    obj = objective(d)
    x = d.vector()
    ev = obj.evaluate(x)
    assert ev.terms["stability"] > 0  # the penalty's gradient is exercised too
    f = lambda y: obj.evaluate(y).value  # noqa: E731
    h = 1e-6 * max(1.0, np.abs(x).max())
    fd = np.array([central_difference(f, x, e, h) for e in np.eye(x.size)])
    assert np.linalg.norm(ev.grad - fd) <= 1e-6 * np.linalg.norm(fd)


def test_gradient_directional_derivatives_large_network():
    d = LinearDecay.create(seed=1, N=80, n_frac=0.1)
    obj = objective(d, beta=0.1)
    x = d.vector()
    ev = obj.evaluate(x)
    rng = np.random.default_rng(0)
    f = lambda y: obj.evaluate(y).value  # noqa: E731
    for _ in range(3):
        v = rng.standard_normal(x.size)
        v /= np.linalg.norm(v)
        fd = central_difference(f, x, v, 1e-5)
        assert ev.grad @ v == pytest.approx(fd, rel=1e-6)


def test_loss_is_invariant_to_scaling_normalized_columns_and_rows():
    d = LinearDecay.create(seed=7, N=40)
    a = dict(d.arrays)
    a["U"] = a["U"] * np.arange(1, a["U"].shape[1] + 1)  # rescale each column of U
    a["V"] = a["V"] * 3.0
    e = LinearDecay(a, d.config, d.seed)
    for key in ("decay", "stability", "smoothness"):
        assert getattr(e.state(), key) == pytest.approx(getattr(d.state(), key), rel=1e-9)


def test_legacy_init_reproduces_the_notebook_draws():
    N, n_frac, seed = 50, 0.1, 2
    saved = np.random.get_state()
    try:  # the published notebook's procedure, with numpy's global generator
        np.random.seed(seed)
        J0 = np.random.randn(N, N) / np.sqrt(N)
        n = int(round(N * n_frac))
        sigma = 1 / np.sqrt(N)
        V = np.random.randn(n, N) * sigma
        U = np.random.randn(N, n) * sigma
        w = np.random.randn(N) / np.sqrt(N)
        after = np.random.randn()
    finally:
        np.random.set_state(saved)
    np.random.seed(99)
    before = np.random.randn()
    d = LinearDecay.create(seed=seed, N=N, n_frac=n_frac, init="legacy")
    for key, ref in (("J0", J0), ("V", V), ("U", U), ("w", w)):
        np.testing.assert_array_equal(d.arrays[key], ref)
    np.random.seed(99)
    assert np.random.randn() == before and after != before  # global state left alone


def test_perturbation_weights_legacy_sigma():
    N, n_frac = 40, 0.2
    n = 8
    rs = np.random.RandomState(4)
    rs.randn(N, N)
    V = rs.randn(n, N) * (1 / (n * N) ** 0.25)
    d = LinearDecay.create(seed=4, N=N, n_frac=n_frac, normalization="perturbation_weights")
    np.testing.assert_array_equal(d.arrays["V"], V)


def test_default_init_uses_generator():
    N = 20
    rng = np.random.default_rng(8)
    J0 = rng.standard_normal((N, N)) / np.sqrt(N)
    V = rng.standard_normal((2, N)) * (1 / np.sqrt(N))
    d = LinearDecay.create(seed=8, N=N, init="default")
    np.testing.assert_array_equal(d.arrays["J0"], J0)
    np.testing.assert_array_equal(d.arrays["V"], V)


def test_simulate_eigenbasis_matches_expm():
    d = stable_network(30, seed=1)
    A = (effective_J(d) - np.eye(30)) / d.config["tau"]
    x0 = d.sample_initial(4, seed=2)
    t = np.array([0.0, 0.003, 0.02, 0.1])
    x = d.simulate(x0, t)
    assert x.shape == (4, 4, 30)
    for k, tk in enumerate(t):
        ref = x0 @ sl.expm(A * tk).T
        np.testing.assert_allclose(x[k], ref, rtol=1e-9, atol=1e-12 * np.abs(x0).max())


def test_decay_time_matches_direct_expm_norm():
    N = 40
    d = stable_network(N, seed=3)
    A = (effective_J(d) - np.eye(N)) / d.config["tau"]
    direct = lambda t: np.linalg.norm(sl.expm(A * t), "fro") ** 2 / N  # noqa: E731
    for t in (0.0, 0.01, 0.05):
        assert relative_sq_norm(d, t)[0] == pytest.approx(direct(t), rel=1e-9)
    for f in (0.05, 0.01):
        tf = decay_time(d, f)
        assert 0 < tf < np.inf
        assert direct(tf) == pytest.approx(f * f, rel=1e-8)
    unstable = LinearDecay.create(seed=3, N=40)
    assert decay_time(unstable, 0.01) == np.inf  # unstable at init
    summary = d.summary()
    assert summary["t_1pct"] == pytest.approx(decay_time(d, 0.01))
    assert summary["spectral_abscissa"] == pytest.approx(np.max(np.linalg.eigvals(effective_J(d)).real))
    # the summary (what `tcnet compare` and `show` print next to L1) says which L1 is no decay value
    assert summary["spectral_abscissa"] < 1 and summary["decay_diverges"] == 0.0
    assert np.max(np.linalg.eigvals(effective_J(unstable)).real) > 1 and unstable.summary()["decay_diverges"] == 1.0


@pytest.mark.parametrize("config, message", [
    ({"n_frac": 0.0}, "n_frac must be in (0, 1]"),
    ({"n_frac": 1.5}, "n_frac must be in (0, 1]"),
    ({"N": 1}, "N must be an integer in [2, inf]"),
    ({"N": 10, "n_frac": 0.01}, "rank n = round(N n_frac) >= 1"),
    ({"tau": 0.0}, "tau must be in (0, inf]"),
    ({"tau": -1.0}, "tau must be in (0, inf]"),
    ({"normalization": "unit"}, "normalization must be one of"),
    ({"init": "random"}, "init must be one of"),
    ({"backend": "torch"}, "backend must be one of 'eig', 'auto', 'fused', 'lyapunov'"),
])
def test_bad_config_is_rejected(config, message):
    with pytest.raises(ConfigError, match="linear_decay") as err:
        LinearDecay.create(seed=0, **{"N": 20, **config})
    assert message in str(err.value)
    if "N" not in config and "init" not in config:  # the same check when a saved network is loaded
        d = LinearDecay.create(seed=0, N=20)
        with pytest.raises(ConfigError) as err:
            LinearDecay(d.arrays, {**d.config, **config}, 0)
        assert message in str(err.value)


def test_bad_arrays_are_rejected():
    d = LinearDecay.create(seed=0, N=20)
    with pytest.raises(ConfigError, match=r"linear_decay: J0 must have shape \(20, 20\), got \(20, 19\)"):
        LinearDecay({**d.arrays, "J0": d.arrays["J0"][:, :-1]}, d.config, 0)
    with pytest.raises(ConfigError, match=r"linear_decay: U must have shape \(20, 2\)"):
        LinearDecay({**d.arrays, "U": d.arrays["U"][:, :1]}, d.config, 0)
    for key in ("J0", "U", "V", "w"):
        bad = d.arrays[key].copy()
        bad.flat[0] = np.nan
        with pytest.raises(ConfigError, match=f"linear_decay: {key} must be finite, found 1 non-finite"):
            LinearDecay({**d.arrays, key: bad}, d.config, 0)
    with pytest.raises(ConfigError, match="U must have no all-zero column"):
        LinearDecay({**d.arrays, "U": np.zeros_like(d.arrays["U"])}, d.config, 0)


def test_simulate_rejects_wrong_dimension():
    d = LinearDecay.create(seed=0, N=20)
    with pytest.raises(ConfigError, match="x0 must have last dimension N = 20"):
        d.simulate(np.zeros(19), [0.0])


def test_a_run_stored_without_a_backend_resumes_on_the_eig_path(tmp_path):
    """A network config saved before the `backend` setting existed meant the generic eig path. A
    run stored that way, interrupted and resumed, continues on that path: its whole history is
    bitwise that of an uninterrupted run with backend "eig" (Adam resumes bitwise), while new
    networks default to "auto", here the fused path. The network is stored with the backend it
    ran on written out."""
    from test_store import Raiser

    import tcnet
    from tcnet import store
    from tcnet.resume import resume
    from tcnet.store import RunWriter

    new = LinearDecay.create(seed=4, N=30)
    assert new.config["backend"] == "auto" and new.state().path == "fused"
    old_config = {k: v for k, v in new.config.items() if k != "backend"}
    old = LinearDecay(new.arrays, old_config, 4)
    assert old.backend == "eig" and old.state().path == "eig" and old.summary()["lyapunov_path"] == 0.0
    spec = {"dynamics": {"name": "linear_decay", "seed": 4, "N": 30},
            "loss": [{"name": "decay"}, {"name": "stability", "weight": 1e5}, {"name": "smoothness", "weight": 0.01}],
            "optimizer": {"name": "adam", "steps": 8, "lr": 0.01}}
    path = tmp_path / "old.h5"
    with pytest.raises(KeyboardInterrupt):
        tcnet.run(spec, dynamics=old, recorders=[RunWriter(path, flush_steps=1), Raiser(4, KeyboardInterrupt())], progress=False)
    rec = store.read_run(path, "run-0001")
    assert rec.status == "interrupted" and rec.initial.config["backend"] == "eig"  # stored as it ran
    resume(path, "run-0001")
    resumed = store.read_run(path, "run-0001")
    assert resumed.status == "finished" and resumed.final.config["backend"] == "eig"
    eig = tcnet.run(spec, dynamics=LinearDecay(new.arrays, {**old_config, "backend": "eig"}, 4), progress=False)
    assert np.array_equal(resumed.history["loss"], eig.history.column("loss"))
    assert np.array_equal(resumed.final.arrays["U"], eig.final.arrays["U"])


def test_a_spec_without_a_backend_reruns_to_the_eig_path_history():
    """A stored run's spec names no backend (tcnet train writes none), so rerunning it from the spec
    alone takes today's default, auto (its stored network names the path it was computed with, see
    the test above). The two-stage run of tests/data/make_store_v1.py then gives the history to
    1e-12, and the final point after 24 steps and the evaluation count of the eig path, to 1e-10."""
    import tcnet

    spec = {"dynamics": {"name": "linear_decay", "seed": 3, "N": 10, "n_frac": 0.2},
            "loss": [{"name": "decay"}, {"name": "stability", "weight": 1e5}, {"name": "smoothness", "weight": 0.01}],
            "optimizer": {"name": "chain", "stages": [{"name": "adam", "steps": 8, "lr": 0.01},
                                                      {"name": "lbfgs", "max_iter": 15}]}}
    now = tcnet.run(spec, progress=False)
    assert now.initial.config["backend"] == "auto"
    eig = tcnet.run({**spec, "dynamics": {**spec["dynamics"], "backend": "eig"}}, progress=False)
    np.testing.assert_allclose(now.history.column("loss"), eig.history.column("loss"), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(now.result.x, eig.result.x, rtol=1e-10, atol=1e-15)
    assert now.result.evaluations == eig.result.evaluations
