"""The `homeostatic` loss: L = (E - E_set)^2/2 + (I - I_set)^2/2 at the QSS rates of an `ei_rate`
state (set points default to the dynamics' E_set, I_set); the learning rules read its set points.
`set_points`: the same for every population of an `ei_circuit`.
"""
import autograd.numpy as anp
import numpy as np

from tcnet import ConfigError, Loss
from tcnet.settings import Array, Real, Settings


class Homeostatic(Loss):
    """L = (E - E_set)^2/2 + (I - I_set)^2/2 at the QSS rates of an `ei_rate` state."""

    name = "homeostatic"
    SETTINGS = Settings(
        Real("E_set", None, "set point of E (null: the dynamics' E_set)", low=0, low_open=True, unit="Hz"),
        Real("I_set", None, "set point of I (null: the dynamics' I_set)", low=0, low_open=True, unit="Hz"),
    )

    def set_points(self, dynamics) -> tuple[float, float]:
        return tuple(dynamics.p[k] if self.config[k] is None else self.config[k] for k in ("E_set", "I_set"))

    def __call__(self, state):
        E_set, I_set = self.set_points(state.dynamics)
        return 0.5 * (state.E - E_set) ** 2 + 0.5 * (state.I - I_set) ** 2


class SetPoints(Loss):
    """L = sum_k (r_k - r_k^set)^2 / 2 over the populations of an `ei_circuit` state's steady rates:
    homeostatic set points for every population (for K = 2 the `homeostatic` loss)."""

    name = "set_points"
    SETTINGS = Settings(
        Array("set_points", None, "set-point rates, one per population (null: the dynamics' set_points)",
              shape=(None,), low=0),
    )

    def targets(self, dynamics):
        """The set points (K,) this loss uses."""
        own = self.config["set_points"]
        targets = dynamics.set_points if own is None else np.asarray(own, dtype=float)
        if targets.shape != (dynamics.K,):
            raise ConfigError(f"{self.name}: set_points must have one entry per population ({dynamics.K}), got {own!r}")
        return targets

    def __call__(self, state):
        return 0.5 * anp.sum((state.rates - self.targets(state.dynamics)) ** 2)
