"""The rate_network dynamics and the trajectory losses: gradients against central finite
differences, trajectories against scipy's solve_ivp, linear_decay's closed form and ei_rate's
trial against the integrator, and the task file's checks."""
import autograd.numpy as anp
import numpy as np
import pytest
from autograd import grad
from scipy.integrate import solve_ivp

from tcnet.integrate import ORDER, solve
from tcnet.loss import Objective, Term
from tcnet.task import Task
from tcnet.validate import ConfigError
from tcnet_plugins.ei.dynamics import EIRate
from tcnet_plugins.preparatory.dynamics import LinearDecay
from tcnet_plugins.rnn import Endpoint, Energy, RateNetwork, Readout
from tcnet_plugins.rnn.nonlinearity import NAMES

LOSSES = {"readout": lambda: Readout(), "endpoint": lambda: Endpoint(target=0.2),
          "energy-state": lambda: Energy(of="state"), "energy-rate": lambda: Energy(of="rate"),
          "energy-input": lambda: Energy(of="input")}


@pytest.fixture(scope="module")
def task_file(tmp_path_factory):
    rng = np.random.default_rng(0)
    C, T = 2, 11
    task = Task(np.linspace(0, 0.03, T), rng.normal(size=(C, T, 2)), rng.normal(size=(C, T, 2)),
                mask=(rng.random((C, T)) > 0.3).astype(float))
    path = tmp_path_factory.mktemp("task") / "task.npz"
    task.save(path)
    return path


def network(task_file, **settings):
    net = RateNetwork.create(seed=3, N=4, task=str(task_file), g=0.8, dt=0.002,
                             trainable=["J", "B", "W", "b", "x0"], **settings)
    rng = np.random.default_rng(4)
    return net.with_vector(net.vector() + 0.3 * rng.standard_normal(net.size))


def directional_check(f, x, rng, rel=1e-6):
    """grad f . d equals the central difference of f along a random direction d."""
    d = rng.standard_normal(np.shape(x))
    eps = 1e-5 * max(1.0, float(np.max(np.abs(x))))
    fd = (f(x + eps * d) - f(x - eps * d)) / (2 * eps)
    assert np.sum(grad(f)(x) * d) == pytest.approx(fd, rel=rel, abs=1e-12)


@pytest.mark.parametrize("phi", NAMES)
@pytest.mark.parametrize("method", ["euler", "rk4"])
@pytest.mark.parametrize("loss", sorted(LOSSES))
def test_loss_gradients_equal_central_differences(task_file, phi, method, loss):
    """With respect to J, B, W, b, x0 (each its own direction) and the inputs u."""
    net = network(task_file, phi=phi, method=method, exponent=1.5)
    term = LOSSES[loss]()
    theta = net.vector()
    rng = np.random.default_rng(5)
    start = 0
    for name in net.trainable:
        n = net.arrays[name].size
        part = lambda v, lo=start, hi=start + n: term(net.state(anp.concatenate([theta[:lo], v, theta[hi:]])))  # noqa: E731
        directional_check(part, theta[start:start + n], rng)
        start += n

    def of_inputs(u):
        state = net.state(theta)
        state.__dict__["inputs"] = u  # the state's cached inputs, traced
        return term(state)

    directional_check(of_inputs, net.task.inputs, rng)


def test_low_rank_connectivity_gradients(task_file):
    net = RateNetwork.create(seed=3, N=4, task=str(task_file), rank=2, dt=0.002, trainable=["U", "V", "W"])
    objective = Objective(net, [Term(Readout())])
    theta = net.vector()
    directional_check(objective, theta, np.random.default_rng(6))
    J = net.arrays["J0"] + net.arrays["U"] @ net.arrays["V"]
    assert np.allclose(net.connectivity, J)


def test_the_analytic_field_equals_autograd_through_rhs(task_file):
    """The field's hand-written VJPs against the generic path (autograd per stage) on its rhs."""
    from tcnet.dynamics import RhsField

    net = network(task_file, phi="softplus")
    field, params = net.vector_field(net.arrays)
    generic = RhsField(net, ("J", "B", "b"))
    task, x0 = net.task, np.tile(net.arrays["x0"], (2, 1))
    w = np.random.default_rng(7).standard_normal((len(task.t), 2, 4))
    for k in range(3):
        def f(p, fld):
            ps = list(params)
            ps[k] = p
            return anp.sum(w * solve(fld, tuple(ps), x0, task.t, task.inputs, "rk4", 0.002))
        assert np.allclose(grad(f)(params[k], field), grad(f)(params[k], generic), rtol=1e-12, atol=1e-14)


def reference(net, x0, t, u):
    """solve_ivp (RK45, rtol 1e-10) of tau dx/dt = -x + J phi(x) + B u(t) + b, u linear between grid
    points, restarted at each grid point (where u has a kink)."""
    a, tau = net.arrays, net.config["tau"]
    out = [x0]
    for k in range(len(t) - 1):
        def rhs(s, x, k=k):
            w = (s - t[k]) / (t[k + 1] - t[k])
            uu = (1 - w) * u[k] + w * u[k + 1]
            return (-x + a["J"] @ net.phi.numpy(x) + a["B"] @ uu + a["b"]) / tau
        sol = solve_ivp(rhs, (t[k], t[k + 1]), out[-1], rtol=1e-10, atol=1e-12)
        out.append(sol.y[:, -1])
    return np.array(out)


@pytest.mark.parametrize("method", ["euler", "rk4"])
@pytest.mark.parametrize("phi", ["tanh", "softplus"])
def test_trajectories_equal_solve_ivp_to_the_schemes_accuracy(task_file, method, phi):
    """The error at small dt is small and falls as dt^order (smooth phi: a kink of relu or power
    where a unit crosses 0 costs RK4 its order)."""
    net0 = network(task_file, phi=phi, method=method)
    task = net0.task
    x0 = task.u[0, 0, :1] * np.ones(4)
    ref = reference(net0, x0, task.t, task.u[0])
    errors = []
    for dt in (2e-4, 1e-4):
        net = RateNetwork(net0.arrays | {f"task_{k}": v for k, v in task.arrays().items()},
                          {**net0.config, "dt": dt}, 3)
        x = net.simulate(x0[None], task.t, task.inputs[:, :1])[:, 0]
        errors.append(np.max(np.abs(x - ref)))
    assert errors[1] < (5e-2 if method == "euler" else 1e-7) * np.max(np.abs(ref))
    assert errors[0] / errors[1] == pytest.approx(2 ** ORDER[method], rel=0.15)


def test_linear_decay_closed_form_equals_the_integrator():
    net = LinearDecay.create(seed=0, N=8, n_frac=0.25)
    x0 = np.random.default_rng(0).standard_normal((3, 8))
    t = np.linspace(0, 0.05, 11)
    state = net.state()
    field, params = net.vector_field(state.params)
    closed = state.trajectory(x0, t)
    integrated = solve(field, params, x0, t, None, "rk4", 1e-4)
    assert np.max(np.abs(closed - integrated)) < 1e-8 * np.max(np.abs(closed))
    assert np.allclose(net.simulate(x0, t), closed, rtol=0, atol=0)
    w = np.random.default_rng(1).standard_normal(closed.shape)

    def loss(theta, integrate):
        s = net.state(theta)
        if integrate:
            f, p = net.vector_field(s.params)
            return anp.sum(w * solve(f, p, x0, t, None, "rk4", 1e-4))
        return anp.sum(w * s.trajectory(x0, t))

    theta = net.vector()
    assert np.allclose(grad(loss)(theta, False), grad(loss)(theta, True), rtol=1e-7, atol=1e-9)


def test_ei_trial_is_differentiable_and_equals_solve_ivp():
    """A kicked trial (the kick an input on the grid) against solve_ivp of the same equations, and
    the gradient of its late mean rate in W against central differences."""
    net = EIRate.create()
    t = np.arange(0.0, 150.0, 0.05)
    kick = np.where(t < 10.0, 10.0, 0.0)
    x = net.state().trajectory(np.zeros((1, 2)), t, kick[:, None, None])[:, 0]
    p, W = net.p, net.arrays["W"]

    def rhs(s, r):
        k = np.interp(s, t, kick)
        return [(-r[0] + p["g_E"] * max(W[0] * r[0] - W[1] * r[1] - p["Theta_E"] + p["I_ext"] + k, 0)) / p["tau_E"],
                (-r[1] + p["g_I"] * max(W[2] * r[0] - W[3] * r[1] - p["Theta_I"], 0)) / p["tau_I"]]

    ref = solve_ivp(rhs, (0, t[-1]), [0.0, 0.0], t_eval=t, rtol=1e-10, atol=1e-12).y.T
    # the rectification's kinks (a population crossing its threshold inside a step) cost the
    # scheme its order: the error is first order in the step here (3e-4 of the rates at 0.05 ms)
    assert np.max(np.abs(x - ref)) < 1e-3 * np.max(np.abs(ref))

    def late_rate(w):
        return anp.mean(net.make_state({"W": w}).trajectory(np.zeros((1, 2)), t, kick[:, None, None])[-500:, 0, 0])

    directional_check(late_rate, W, np.random.default_rng(0))


@pytest.mark.parametrize("arrays, message", [
    ({"t": [0.0, 1.0], "u": np.zeros((2, 3, 1)), "target": np.zeros((2, 2, 1))}, "u must have shape (conditions, T = 2"),
    ({"t": [0.0, 1.0], "u": np.zeros((2, 2)), "target": np.zeros((2, 2, 1))}, "u must be a real array of shape"),
    ({"t": [1.0, 0.0], "u": np.zeros((2, 2, 1)), "target": np.zeros((2, 2, 1))}, "t must have shape (T,) with"),
    ({"t": [0.0, 1.0], "u": np.zeros((2, 2, 1)), "target": np.zeros((3, 2, 1))}, "target must have shape (conditions = 2"),
    ({"t": [0.0, 1.0], "u": np.zeros((2, 2, 1)), "target": np.zeros((2, 2, 1)), "x0": np.zeros((3, 4))},
     "x0 must have shape (conditions = 2, N)"),
    ({"t": [0.0, 1.0], "u": np.zeros((2, 2, 1)), "target": np.zeros((2, 2, 1)), "mask": np.ones((2, 3))},
     "mask must have shape (2, 2) or (2, 2, 1)"),
    ({"t": [0.0, 1.0], "u": np.zeros((2, 2, 1))}, "has no target"),
    ({"t": [0.0, 1.0], "u": np.zeros((2, 2, 1)), "target": np.zeros((2, 2, 1)), "y": 1}, "unknown array(s) y"),
])
def test_bad_task_arrays_are_named_with_the_shape_expected(tmp_path, arrays, message):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(ConfigError, match="^task: .*" + message.replace("(", r"\(").replace(")", r"\)")) as err:
        Task.read(path)
    assert "\n" not in str(err.value)


def test_a_task_that_does_not_fit_the_network_is_refused(task_file):
    with pytest.raises(ConfigError, match="inputs = 3 but the task"):
        RateNetwork.create(task=str(task_file), inputs=3)
    with pytest.raises(ConfigError, match="trainable must be a list of distinct names among U, V, B, W, b, x0"):
        RateNetwork.create(task=str(task_file), rank=2, trainable=["J"])
    with pytest.raises(ConfigError, match="readout: the rate_network network has no task"):
        Objective(RateNetwork.create(), [Term(Readout())]).evaluate(RateNetwork.create().vector())


def test_hdf5_task_reads_as_the_npz(task_file, tmp_path):
    task = Task.read(task_file)
    task.save(tmp_path / "task.h5")
    again = Task.read(tmp_path / "task.h5")
    for k, a in task.arrays().items():
        assert np.array_equal(getattr(again, k), a)
