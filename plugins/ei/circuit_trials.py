"""The noisy Euler trial of `tcnet_plugins.ei.trials` for a K-population circuit (`ei_circuit`).

The protocol of `trials.Trial` (its settings, its noise draws) with K populations: per step each
population's noise moves as a discrete Ornstein-Uhlenbeck process, then the populations take
their Euler steps in order, each with the rates already updated this step (for K = 2: E, then I
with the new E, as the published code does), then every rate is clipped at its `clip` entry;
`kick` is added to the first population's input (the excitatory one of the presets) during the
kick. Trial k draws default_rng([seed, k]).standard_normal((n_steps, K)), so that for K = 2 a
trial is the two-population trial to the last bit (tests/test_ei_circuit.py).
"""
import numba
import numpy as np

from tcnet.validate import ConfigError


@numba.njit(cache=True)
def _euler(Ws, g, offset, exponent, smooth, h, kick, kick_on, kick_off, z, noise, relaxation, sigma, clip, r_max,
           n_avg):
    """The trial loop: Ws (K, K) signed weights, g gains, offset = input - threshold, exponent and
    smooth (smoothness, 0: sharp) of each transfer, h = dt / tau; `noise` (K,) is updated in
    place. Returns the mean rates of the last n_avg steps, NaN after a runaway above r_max."""
    K = Ws.shape[0]
    r = np.zeros(K)
    sums = np.zeros(K)
    n = z.shape[0]
    for k in range(n):
        for j in range(K):
            noise[j] = noise[j] + relaxation * (0.0 - noise[j]) + sigma * z[k, j]
        for i in range(K):
            x = 0.0
            for j in range(K):
                x += Ws[i, j] * r[j]
            x = x + offset[i] + noise[i]
            if i == 0 and kick_on <= k < kick_off:
                x += kick
            if smooth[i] > 0:
                y = max(x / smooth[i], -300.0)
                f = smooth[i] * (1.0 + 0.5 * y if abs(y) < 1e-6 else y / -np.expm1(-y))
            elif exponent[i] == 1.0:
                f = max(x, 0.0)
            else:
                f = max(x, 0.0) ** exponent[i]
            r[i] = r[i] + h[i] * (-r[i] + g[i] * f)
        runaway = False
        for i in range(K):
            r[i] = min(r[i], clip[i])
            if r[i] > r_max:
                runaway = True
        if runaway:
            return np.full(K, np.nan)
        if k >= n - n_avg:
            sums += r
    return sums / n_avg


def run_trial(trial, dynamics, W, noise, index):
    """One trial (`trials.Trial` settings, integrator "euler") of the circuit with weights W (K x K)
    from rest: (rates (K,) averaged over the last `average` ms, the noise (K,) at its end)."""
    K = dynamics.K
    if trial.integrator != "euler":
        raise ConfigError(f"{dynamics.name}: trials of a K-population circuit need integrator = 'euler'")
    if trial.clip is not None and K != 2:
        raise ConfigError(f"{dynamics.name}: clip = [E_max, I_max] is for two populations; got {K}")
    n = trial.steps(trial.length)
    z = np.random.default_rng([trial.seed, index]).standard_normal((n, K)) if trial.noise > 0 else np.zeros((n, K))
    state = np.array(noise, dtype=float)
    field = dynamics.field
    Ws = np.asarray(W, dtype=float) * dynamics.sign[None, :]
    clip = np.array(trial.clip if trial.clip is not None else (np.inf,) * K)
    kick_on = trial.steps(trial.kick_onset)
    rates = _euler(Ws, field.gain, field.offset, field.exponent, np.where(field.smooth, field.s, 0.0),
                   trial.dt / field.tau, trial.kick, kick_on, kick_on + trial.steps(trial.kick_duration), z, state,
                   trial.noise_relaxation, trial.noise, clip, trial.r_max, max(trial.steps(trial.average), 1))
    return rates, state
