"""The `homeostatic` loss: L = (E - E_set)^2/2 + (I - I_set)^2/2 at the QSS rates of an `ei_rate`
state (set points default to the dynamics' E_set, I_set); the learning rules read its set points.
"""
from tcnet import Loss
from tcnet.settings import Real, Settings


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
