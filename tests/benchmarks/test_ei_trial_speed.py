"""Trials per second of the published E/I trial protocol (2 s of 0.1 ms Euler steps: 20 000 steps,
their 40 000 noise draws, kick, clipping, the last 0.5 s averaged), as ratios to two baselines run
right before each timed round (pedantic's untimed setup), so load from other processes hits all
alike: the same trial as a plain Python loop, and numpy drawing the trial's normals alone (the
part no integrator can skip). Nothing asserts on time.

    make bench
"""
import time

import numpy as np
import pytest

from _speed_table import NOTES
from tcnet_plugins.ei import model as ei
from tcnet_plugins.ei.trials import PROTOCOLS, Trial

P = ei.PRESETS["paradoxical"]["params"]
W = np.array([5.0, 15.2 / 14, 10.0, 21.5 / 14])  # published set-point weights: the kick starts the Up state


def python_trial(z):
    """The same trial as a plain Python loop (the arithmetic of the compiled one)."""
    W_EE, W_EI, W_IE, W_II = W
    E = I = n_E = n_I = 0.0
    total_E = total_I = 0.0
    for k in range(len(z)):
        n_E = n_E + 0.1 * (0.0 - n_E) + 0.1 * z[k, 0]
        n_I = n_I + 0.1 * (0.0 - n_I) + 0.1 * z[k, 1]
        kick = 7.0 if 2500 <= k < 2600 else 0.0
        E = min(E + 0.01 * (-E + max(W_EE * E - W_EI * I - 4.8 + kick + n_E, 0.0)), 100.0)
        I = min(I + 0.05 * (-I + 4.0 * max(W_IE * E - W_II * I - 25.0 + n_I, 0.0)), 250.0)
        if k >= len(z) - 5000:
            total_E, total_I = total_E + E, total_I + I
    return total_E / 5000, total_I / 5000


@pytest.mark.benchmark
def test_published_trial_vs_python_loop_and_noise_draws(benchmark):
    settings = {"integrator": "adaptive", "r_max": 1e3, "seed": 0, **PROTOCOLS["soldado2022"]}
    trial = Trial.from_settings("benchmark", settings)
    trial.run(W, P)  # compile (or load numba's cache) outside the timing
    python, draws = [], []

    def baselines_first():
        t0 = time.perf_counter()
        z = trial.normals(0)
        draws.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        python.append((python_trial(z), time.perf_counter() - t0)[1])
        return (), {}

    rates = benchmark.pedantic(lambda: trial.run(W, P)[0], setup=baselines_first, rounds=7, warmup_rounds=0)
    np.testing.assert_allclose(rates, python_trial(trial.normals(0)), rtol=1e-12)
    best = min(benchmark.stats.stats.data)
    NOTES.append(f"E/I published trial (20000 Euler steps + noise): {best * 1e3:.2f} ms = {1 / best:.0f} trials/s; "
                 f"{min(python) / best:.0f} x faster than the plain Python loop ({min(python) * 1e3:.0f} ms), "
                 f"{best / min(draws):.2f} x numpy drawing its normals ({min(draws) * 1e3:.2f} ms)")
