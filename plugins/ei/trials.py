"""Simulation of the E/I rate model: its two integrators and the learning trial they run. One
trial is the network started at rest, kicked, driven by noise, and measured over its last stretch.

A trial (times in ms) integrates

    tau_E dE/dt = -E + g_E [W_EE E - W_EI I - Theta_E + I_ext + kick(t) + n_E(t)]_+
    tau_I dI/dt = -I + g_I [W_IE E - W_II I - Theta_I + n_I(t)]_+

from E = I = 0 for `length` ms; kick(t) = `kick` on [kick_onset, kick_onset + kick_duration).
The trial's rates are the means of E and I over its last `average` ms (0: the end values).

Two integrators:
- "euler": fixed steps of `dt` in a compiled loop (numba). Per step, as in the published code
  (Soldado-Magraner et al. 2022, rate-population demo): first each population's noise moves as
  a discrete Ornstein-Uhlenbeck process, n <- n + relaxation (0 - n) + noise N(0, 1), then E
  takes its Euler step, then I takes its step with the new E, then E and I are clipped at
  `clip` = (E_max, I_max) if given (the run goes on). The noise carries over from one trial to
  the next. The N(0, 1) draws of trial k are numpy's `default_rng([seed, k]).standard_normal
  ((n_steps, 2))` (column 0 for E, column 1 for I), so a trial is reproducible on its own
  (and a resumed run draws exactly what the uninterrupted one did).
- "adaptive": scipy's RK45 at tight tolerance (`integrate`, which also simulates the model from
  any start for the `ei_rate` dynamics and the figures), noise-free and unclipped.
Either way a trial whose rates exceed `r_max` is a runaway: its rates are NaN.

`PROTOCOLS["soldado2022"]` holds the published values (2 s trials of 0.1 ms Euler steps, kick 7
at 250 ms for 10 ms, OU noise 0.1/0.1, clip (100, 250), the last 0.5 s averaged), together with
the published learning settings the optimizer applies between trials: cross-trial low-pass
avg <- avg + (rate - avg)/2 (`smoothing` 0.5), the rule sees max(1, avg) (`rate_floor` 1),
alpha = 5e-4 (`lr`), weights floored at 0.1 (`w_min`), 2000 trials.
"""
from dataclasses import dataclass

import numba
import numpy as np
from scipy.integrate import solve_ivp

from tcnet.optim import Iterative
from tcnet.settings import Choice, Integer, Real, Setting, Settings
from tcnet.validate import ConfigError, positive, real

PROTOCOLS = {
    "soldado2022": {"mode": "trials", "integrator": "euler", "dt": 0.1, "trial_length": 2000.0, "kick": 7.0,
                    "kick_onset": 250.0, "kick_duration": 10.0, "average": 500.0, "noise": 0.1,
                    "noise_relaxation": 0.1, "clip": [100.0, 250.0], "smoothing": 0.5, "rate_floor": 1.0,
                    "w_min": 0.1, "lr": 5e-4, "steps": 2000},
}


SETTINGS = Settings(
    Choice("integrator", "adaptive", "'euler': fixed steps with noise and clip; 'adaptive': RK45, noise-free",
           options=("adaptive", "euler")),
    Real("dt", 0.1, "Euler step (ms)", low=0, low_open=True),
    Real("trial_length", 300.0, "trial duration from rest (ms)", low=0, low_open=True),
    Real("kick", 10.0, "input added to E during the kick"),
    Real("kick_onset", 0.0, "start of the kick (ms)", low=0),
    Real("kick_duration", 10.0, "duration of the kick (ms)", low=0),
    Real("average", 100.0, "the trial's rates are the means over its last `average` ms (0: end values)", low=0),
    Real("noise", 0.0, "standard deviation of each Ornstein-Uhlenbeck noise update", low=0),
    Real("noise_relaxation", 0.1, "fraction of the noise relaxed to 0 per step", low=0, high=1),
    Setting("clip", None, "[E_max, I_max] > 0: rates clipped after each Euler step (null: none)"),
    Real("r_max", 1e3, "rates above it make the trial a runaway (NaN rates)", low=0, low_open=True),
    Integer("seed", 0, "seed of the trial noise: trial k draws from default_rng([seed, k])", low=0, high=2**32 - 1),
)
"""The trial's settings, declared once; a learning rule's settings include them."""


def integrate(W, p, r0, t, kick=0.0, kick_duration=0.0, r_max=None, kick_onset=0.0):
    """Rates (E, I) at times t (t[0] is the start) from r0, with `kick` added to the excitatory
    input during [t[0] + kick_onset, t[0] + kick_onset + kick_duration). Returns (len(t), 2); rows
    after a runaway (E or I above r_max) are NaN. scipy's RK45 is restarted at the kick's edges
    (input discontinuities).
    """
    W_EE, W_EI, W_IE, W_II = (float(w) for w in W)
    t = np.asarray(t, dtype=float)
    out = np.full((len(t), 2), np.nan)

    def rhs(_, r, extra):
        E, I = r
        dE = (-E + p["g_E"] * max(W_EE * E - W_EI * I - p["Theta_E"] + p["I_ext"] + extra, 0.0)) / p["tau_E"]
        dI = (-I + p["g_I"] * max(W_IE * E - W_II * I - p["Theta_I"], 0.0)) / p["tau_I"]
        return [dE, dI]

    events = None
    if r_max is not None:
        def runaway(_, r, extra):
            return r_max - max(r[0], r[1])
        runaway.terminal = True
        events = runaway
    on, off = t[0] + kick_onset, t[0] + kick_onset + kick_duration
    segments = [(t[0], min(on, t[-1]), 0.0), (on, min(off, t[-1]), kick), (off, t[-1], 0.0)]
    y = np.asarray(r0, dtype=float)
    out[0] = y
    for a, b, extra in segments:
        if b <= a:
            continue
        mask = (t > a) & (t <= b)
        t_eval = np.union1d(t[mask], [b])  # b last, so the segment's end state is sol.y[:, -1]
        sol = solve_ivp(rhs, (a, b), y, method="RK45", t_eval=t_eval, args=(extra,), rtol=1e-8,
                        atol=1e-10, events=events)
        n = np.size(sol.t)
        if n:
            reached = np.isin(t_eval[:n], t[mask])
            out[np.flatnonzero(mask)[: np.count_nonzero(reached)]] = sol.y.T[reached]
        if sol.status != 0:  # runaway (event) or integration failure: the rest stays NaN
            return out
        y = sol.y[:, -1]
    return out


@numba.njit(cache=True)
def _euler(w, g, offset, h, kick, kick_on, kick_off, z, noise, relaxation, sigma, clip, r_max, n_avg,
           trace):
    """The Euler trial loop (see the module docstring). w = (W_EE, W_EI, W_IE, W_II), g = (g_E, g_I),
    offset = (I_ext - Theta_E, -Theta_I), h = (dt/tau_E, dt/tau_I); `noise` (2,) is updated in place;
    `trace` is (n_steps, 2) to record every step or (0, 2). Returns the mean (E, I) of the last
    n_avg steps, or NaN after a runaway above r_max."""
    E, I = 0.0, 0.0
    n_E, n_I = noise[0], noise[1]
    sum_E, sum_I = 0.0, 0.0
    n = z.shape[0]
    record = trace.shape[0] == n
    runaway = False
    for k in range(n):
        n_E = n_E + relaxation * (0.0 - n_E) + sigma * z[k, 0]
        n_I = n_I + relaxation * (0.0 - n_I) + sigma * z[k, 1]
        x_E = w[0] * E - w[1] * I + offset[0] + n_E
        if kick_on <= k < kick_off:
            x_E += kick
        E = E + h[0] * (-E + g[0] * max(x_E, 0.0))
        I = I + h[1] * (-I + g[1] * max(w[2] * E - w[3] * I + offset[1] + n_I, 0.0))
        E = min(E, clip[0])
        I = min(I, clip[1])
        if record:
            trace[k, 0] = E
            trace[k, 1] = I
        if E > r_max or I > r_max:
            runaway = True
            break
        if k >= n - n_avg:
            sum_E += E
            sum_I += I
    noise[0], noise[1] = n_E, n_I
    if runaway:
        return np.nan, np.nan
    return sum_E / n_avg, sum_I / n_avg


@dataclass(frozen=True)
class Trial:
    """The within-trial protocol (module docstring), made by `from_settings`."""

    integrator: str
    dt: float
    length: float
    kick: float
    kick_onset: float
    kick_duration: float
    average: float
    noise: float
    noise_relaxation: float
    clip: tuple | None
    r_max: float
    seed: int

    @classmethod
    def from_settings(cls, owner: str, given: dict) -> "Trial":
        """The trial of the `SETTINGS` keys in `given` (a learning rule's settings, say), the
        others at their defaults; each is checked against its declaration, and here how they
        relate: the kick and the averaged stretch fit in the trial, clip is a positive pair, and
        noise or clip come with the Euler integrator. Errors name `owner` and the setting."""
        s = SETTINGS.resolve(owner, {k: v for k, v in given.items() if k in SETTINGS.names})
        length, onset, duration = s["trial_length"], s["kick_onset"], s["kick_duration"]
        real(owner, "kick_onset", onset, low=0, high=length)
        real(owner, "kick_duration", duration, low=0, high=length - onset)
        real(owner, "average", s["average"], low=0, high=length - onset - duration)
        clip = s["clip"]
        if clip is not None:
            if np.shape(clip) != (2,):
                raise ConfigError(f"{owner}: clip must be null or [E_max, I_max] (> 0), got {clip!r}")
            clip = (positive(owner, "clip E_max", clip[0]), positive(owner, "clip I_max", clip[1]))
        if s["integrator"] == "adaptive" and (s["noise"] > 0 or clip is not None):
            raise ConfigError(f"{owner}: noise and clip need integrator = 'euler' (the adaptive integrator is "
                              "noise-free and unclipped)")
        return cls(s["integrator"], s["dt"], length, s["kick"], onset, duration, s["average"], s["noise"],
                   s["noise_relaxation"], clip, s["r_max"], s["seed"])

    def steps(self, duration: float) -> int:
        return int(round(duration / self.dt))

    def normals(self, index: int) -> np.ndarray:
        """The N(0, 1) draws of trial `index`, shape (n_steps, 2)."""
        return np.random.default_rng([self.seed, index]).standard_normal((self.steps(self.length), 2))

    def run(self, W, p, noise=(0.0, 0.0), index=0, record=False):
        """One trial with weights W from rest: ((E, I) means over the last `average` ms, the noise
        (n_E, n_I) at its end, and the (n_steps, 2) rates of every step if `record`, else None)."""
        if self.integrator == "adaptive":
            return self._adaptive(W, p, noise, record)
        n = self.steps(self.length)
        z = self.normals(index) if self.noise > 0 else np.zeros((n, 2))
        state = np.array(noise, dtype=float)
        trace = np.full((n if record else 0, 2), np.nan)
        clip = np.array(self.clip if self.clip is not None else (np.inf, np.inf))
        gains = np.array([p["g_E"], p["g_I"]])
        offset = np.array([p["I_ext"] - p["Theta_E"], -p["Theta_I"]])
        h = self.dt / np.array([p["tau_E"], p["tau_I"]])
        kick_on = self.steps(self.kick_onset)
        kick_off = kick_on + self.steps(self.kick_duration)
        E, I = _euler(np.asarray(W, dtype=float), gains, offset, h, self.kick, kick_on, kick_off, z, state,
                      self.noise_relaxation, self.noise, clip, self.r_max, max(self.steps(self.average), 1), trace)
        return (E, I), (float(state[0]), float(state[1])), (trace if record else None)

    def _adaptive(self, W, p, noise, record):
        """The noise-free trial by RK45: its rates average 51 points of the last `average` ms (the
        end value if 0), on a grid of spacing dt as well when `record`."""
        T = self.length
        window = np.linspace(T - self.average, T, 51) if self.average > 0 else np.array([T])
        grid = np.linspace(0.0, T, self.steps(T) + 1) if record else np.array([0.0])
        t = np.union1d(grid, window)
        r = integrate(W, p, (0.0, 0.0), t, self.kick, self.kick_duration, self.r_max, self.kick_onset)
        E, I = r[np.isin(t, window)].mean(axis=0)
        return (float(E), float(I)), tuple(noise), (r[np.isin(t, grid)][1:] if record else None)


class ProtocolRule(Iterative):
    """A learning rule that runs in QSS or in the published trial protocol (the rules of
    tcnet_plugins.ei.optimizers and `loss_rule`): its settings are the declared defaults, overridden
    by the named `protocol`'s preset (PROTOCOLS), overridden by the keys given; `check` builds
    its Trial from them."""

    def __init__(self, **settings):
        protocol = settings.get("protocol")
        preset = PROTOCOLS.get(protocol, {}) if isinstance(protocol, str) else {}
        super().__init__(**{**preset, **settings})

    def check(self):
        super().check()
        self.trial = Trial.from_settings(self.name, self.settings)
