"""The `ei_rate` dynamics: the two-population E/I rate model with trainable weights.

Parameters g_E, g_I (gains, > 0: the set-point weights divide by them), Theta_E, Theta_I, I_ext
(any real), tau_E, tau_I (ms, > 0), E_set, I_set (> 0); `preset` "paradoxical" (default) or
"non_paradoxical" gives the parameter sets of the original notebooks, single keys override it.
Trainable array `W` = (W_EE, W_EI, W_IE, W_II) >= 0. The state's QSS rates are the fixed point a
kicked trial from rest reaches (`model.steady_state`: every fixed point of the four linear
regions, the stable one with the largest E; NaN where none is stable), traceable by autograd; see
`tcnet_plugins.ei.model` for every formula. `simulate` integrates the model by RK45
(`trials.integrate`); the state's `trajectory` integrates the same equations (`rhs`) with
tcnet.integrate, differentiable in W.
"""
from functools import cached_property

import autograd.numpy as anp
import numpy as np
from autograd.tracer import getval

from tcnet import ConfigError, Dynamics, State
from tcnet.labels import Labels, Quantity
from tcnet.settings import Array, Choice, Real, Settings
from tcnet.validate import array, real

from tcnet_plugins.ei import model as ei
from tcnet_plugins.ei.trials import integrate


def parameter_settings() -> Settings:
    """The model parameters as settings: each defaults to its preset's value (None)."""
    docs = {"g_E": ("gain of E", "Hz", 0), "g_I": ("gain of I", "Hz", 0), "Theta_E": ("threshold of E", "", None),
            "Theta_I": ("threshold of I", "", None), "I_ext": ("external input to E", "", None),
            "tau_E": ("time constant of E", "ms", 0), "tau_I": ("time constant of I", "ms", 0),
            "E_set": ("set point of E", "Hz", 0), "I_set": ("set point of I", "Hz", 0)}
    return Settings(*(Real(k, None, f"{docs[k][0]} (null: the preset's)", unit=docs[k][1], low=docs[k][2],
                           low_open=docs[k][2] is not None) for k in ei.PARAMETERS))


class EIState(State):
    """QSS rates, Jacobian and conditions of one weight vector (autograd-traceable)."""

    @cached_property
    def W(self):
        return self.params["W"]

    @cached_property
    def rates(self):
        return ei.fixed_point(self.W, self.dynamics.p)

    @property
    def E(self):
        return self.rates[0]

    @property
    def I(self):
        return self.rates[1]

    @cached_property
    def regime(self) -> int:
        """The QSS's linear region (model.REGIONS index; model.RUNAWAY without a stable fixed point)."""
        return int(ei.steady_state(getval(self.W), self.dynamics.p)[2])

    @cached_property
    def up(self) -> bool:
        return bool(ei.up_exists(getval(self.W), self.dynamics.p))

    @cached_property
    def jacobian(self):
        return ei.jacobian(self.W, self.dynamics.p)

    @cached_property
    def stable(self) -> bool:
        return bool(ei.stable_up(getval(self.W), self.dynamics.p))

    @cached_property
    def paradoxical(self) -> bool:
        return bool(ei.paradoxical_coefficient(getval(self.W), self.dynamics.p) > 0)


class EIRate(Dynamics):
    """The E/I rate model with trainable weights W = (W_EE, W_EI, W_IE, W_II)."""

    name = "ei_rate"
    trainable = ("W",)
    labels = Labels(
        time=Quantity("t", "ms"), state=Quantity("rate", "Hz"), axis="population", entries=("E", "I"),
        config={"E_set": Quantity("E set point", "Hz"), "I_set": Quantity("I set point", "Hz")},
        summary={"E_qss": Quantity("steady-state rate E", "Hz"), "I_qss": Quantity("steady-state rate I", "Hz"),
                 "regime": Quantity("steady-state regime (0 rest, 1 E only, 2 I only, 3 Up, -1 runaway)"),
                 "E_up": Quantity("Up-state rate E", "Hz"), "I_up": Quantity("Up-state rate I", "Hz"),
                 "up": Quantity("Up state exists"), "stable": Quantity("Up state stable"),
                 "paradoxical": Quantity("paradoxical"), "W_EI_set": Quantity("set-point W_EI"),
                 "W_II_set": Quantity("set-point W_II")},
        headline=("E_qss", "I_qss"))

    SETTINGS = Settings(
        Choice("preset", "paradoxical", "the parameter set and initial weights of an original notebook",
               options=tuple(ei.PRESETS)),
        *parameter_settings(),
        Array("W", None, "initial weights (W_EE, W_EI, W_IE, W_II) (null: the preset's)", shape=(4,), low=0,
              stored=False),
    )

    def __init__(self, arrays, config=None, seed=None, *, data=None):
        config = dict(config or {})
        preset = ei.PRESETS.get(config.get("preset", "paradoxical"), {"params": {}})["params"]
        config.update({k: preset[k] for k in ei.PARAMETERS if config.get(k) is None and k in preset})
        super().__init__(arrays, config, seed, data=data)  # every parameter stored as a number: as the network ran

    @classmethod
    def build(cls, seed, preset, W, **params):
        """The preset's network (its initial weights unless W is given); keys override parameters."""
        return cls({"W": ei.PRESETS[preset]["W"] if W is None else W}, {"preset": preset, **params}, seed)

    @cached_property
    def p(self) -> dict:
        """The model parameters (every key of model.PARAMETERS)."""
        return {k: self.config[k] for k in ei.PARAMETERS}

    def check(self):
        W = array(self.name, "W", self.arrays["W"], shape=(4,))
        if np.any(W < 0):
            raise ConfigError(f"{self.name}: W = (W_EE, W_EI, W_IE, W_II) must be >= 0, got {W.tolist()}")

    def make_state(self, params):
        return EIState(self, params)

    def rhs(self, x, u, params):
        """The rate equations for rates x = (E, I) (C, 2), time in ms, with inputs u (C, 1) added
        to E's drive (a kick) or (C, 2) to E's and I's (a kick and noise), or None; traceable, so
        a loss on a simulated trial (State.trajectory) has exact gradients in W."""
        W, p = params["W"], self.p
        E, I = x[:, 0], x[:, 1]
        drive_E = W[0] * E - W[1] * I - p["Theta_E"] + p["I_ext"]
        drive_I = W[2] * E - W[3] * I - p["Theta_I"]
        if u is not None:
            drive_E = drive_E + u[:, 0]
            drive_I = drive_I + u[:, 1] if u.shape[1] > 1 else drive_I
        dE = (-E + p["g_E"] * anp.maximum(drive_E, 0.0)) / p["tau_E"]
        dI = (-I + p["g_I"] * anp.maximum(drive_I, 0.0)) / p["tau_I"]
        return anp.stack([dE, dI], axis=1)

    def simulate(self, x0, t, kick=0.0, kick_duration=0.0, r_max=None):
        """Rates (E, I) at times t (ms, t[0] the start) from x0 of shape (..., 2), optionally with
        `kick` added to the excitatory input during the first `kick_duration` ms (to start an Up
        state). Returns (len(t),) + x0.shape; NaN after a runaway above r_max."""
        x0 = np.asarray(x0, dtype=float)
        if x0.shape[-1:] != (2,):
            raise ConfigError(f"{self.name}: x0 must have shape (..., 2) (E, I), got {x0.shape}")
        real(self.name, "kick", kick)
        real(self.name, "kick_duration", kick_duration, low=0)
        out = np.empty((len(t),) + x0.shape)
        for idx in np.ndindex(x0.shape[:-1]):
            out[(slice(None),) + idx] = integrate(self.arrays["W"], self.p, x0[idx], t, kick, kick_duration,
                                                  r_max)
        return out

    def sample_initial(self, n, seed=0):
        """n initial rates uniform in [0, 2 E_set] x [0, 2 I_set]."""
        rng = np.random.default_rng(seed)
        return rng.uniform(0.0, 1.0, size=(n, 2)) * 2.0 * np.array([self.p["E_set"], self.p["I_set"]])

    def trajectory_metrics(self, t, x):
        """Each trajectory's rates (Hz) at the last time."""
        return {"E(t_max) [Hz]": x[-1, :, 0], "I(t_max) [Hz]": x[-1, :, 1]}

    def summary(self):
        """The steady state (QSS) and its regime; the Up state (E_up, I_up NaN where it does not
        exist), its trace, det, stability and paradoxical flag; the set-point W_EI, W_II."""
        W, p = self.arrays["W"], self.p
        E, I, regime = ei.steady_state(W, p)
        E_up, I_up, _ = ei.linear_up(W, p)
        up = ei.up_exists(W, p)
        tr, det = ei.trace_det(W, p)
        W_EI_set, W_II_set = ei.set_point_weights(W[0], W[2], p)
        return {"E_qss": float(E), "I_qss": float(I), "regime": float(regime),
                "E_up": float(E_up) if up else np.nan, "I_up": float(I_up) if up else np.nan, "up": float(up),
                "trace": float(tr), "det": float(det), "stable": float(ei.stable_up(W, p)),
                "paradoxical": float(ei.paradoxical_coefficient(W, p) > 0),
                "W_EI_set": float(W_EI_set), "W_II_set": float(W_II_set)}
