"""Value and gradient of the `readout` loss of a rate network (tanh, RK4) on 20 conditions x 1000
steps, as a ratio to one forward simulation of the same network and conditions run right before
each timed round (pedantic's untimed setup), at N = 100 and N = 300; and, where jax is installed,
the same scheme under jax.jit (value and gradient) for a side-by-side. Nothing asserts on time.

    make bench
"""
import time

import numpy as np
import pytest

from _speed_table import NOTES
from tcnet.loss import Objective, Term
from tcnet.task import Task
from tcnet_plugins.rnn import RateNetwork, Readout

CONDITIONS, STEPS = 20, 1000


def problem(N, tmp_path):
    rng = np.random.default_rng(0)
    t = np.linspace(0.0, 0.5, STEPS + 1)
    task = Task(t, rng.standard_normal((CONDITIONS, STEPS + 1, 2)), rng.standard_normal((CONDITIONS, STEPS + 1, 1)))
    task.save(tmp_path / "task.npz")
    net = RateNetwork.create(seed=0, N=N, task=str(tmp_path / "task.npz"), g=1.2)
    return net, Objective(net, [Term(Readout())])


@pytest.mark.benchmark
@pytest.mark.parametrize("N", [100, 300])
def test_readout_value_and_gradient_vs_one_forward_simulation(benchmark, N, tmp_path):
    net, objective = problem(N, tmp_path)
    theta, task = net.vector(), net.task
    x0 = net.sample_initial(CONDITIONS)
    forward = []

    def forward_first():
        t0 = time.perf_counter()
        net.simulate(x0, task.t, task.inputs)
        forward.append(time.perf_counter() - t0)
        return (), {}

    ev = benchmark.pedantic(lambda: objective.evaluate(theta), setup=forward_first, rounds=5, warmup_rounds=1)
    assert np.isfinite(ev.value)
    ratios = np.array(benchmark.stats.stats.data) / np.array(forward[-len(benchmark.stats.stats.data):])
    NOTES.append(f"rate_network N = {N}, {CONDITIONS} conditions x {STEPS} RK4 steps: readout value+gradient "
                 f"{min(benchmark.stats.stats.data) * 1e3:.0f} ms = {np.median(ratios):.2f} (min {ratios.min():.2f}) x one "
                 f"forward simulation ({min(forward) * 1e3:.0f} ms)")


@pytest.mark.benchmark
@pytest.mark.parametrize("N", [100, 300])
def test_side_by_side_with_jax_jit(benchmark, N, tmp_path):
    jax = pytest.importorskip("jax")
    jnp = jax.numpy
    jax.config.update("jax_enable_x64", True)
    net, objective = problem(N, tmp_path)
    a, task, tau = net.arrays, net.task, net.config["tau"]
    h = float(task.t[1] - task.t[0])
    u, target = jnp.asarray(task.inputs), jnp.asarray(task.targets)

    def loss(J, B, W, b):
        f = lambda x, v: (-x + jnp.tanh(x) @ J.T + v @ B.T + b) / tau  # noqa: E731

        def step(x, uu):
            u0, u1 = uu
            um = (u0 + u1) / 2
            k1 = f(x, u0)
            k2 = f(x + h / 2 * k1, um)
            k3 = f(x + h / 2 * k2, um)
            k4 = f(x + h * k3, u1)
            x = x + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
            return x, x

        x0 = jnp.zeros((CONDITIONS, N))
        _, xs = jax.lax.scan(step, x0, (u[:-1], u[1:]))
        xs = jnp.concatenate([x0[None], xs])
        return jnp.mean((jnp.tanh(xs) @ W.T - target) ** 2)

    fn = jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2, 3)))
    args = tuple(jnp.asarray(a[k]) for k in ("J", "B", "W", "b"))
    value, _ = fn(*args)
    assert float(value) == pytest.approx(objective.evaluate(net.vector()).value, rel=1e-9)
    theta = net.vector()
    t0 = time.perf_counter()
    objective.evaluate(theta)
    ours = time.perf_counter() - t0
    benchmark.pedantic(lambda: jax.block_until_ready(fn(*args)), rounds=5, warmup_rounds=1)
    best = min(benchmark.stats.stats.data)
    NOTES.append(f"rate_network N = {N}: jax.jit value+gradient {best * 1e3:.0f} ms, tcnet {ours * 1e3:.0f} ms "
                 f"(tcnet / jax = {ours / best:.2f})")
