"""Trajectory losses: `readout`, `endpoint` and `energy`, read off the state's simulation of its
task (all conditions at once, one integration per evaluation shared by every term).

- readout: sum m (y - target)^2 / sum m over time, conditions and outputs, m the task's mask
  (ones without one): the masked mean squared error of the readout;
- endpoint: mean over conditions and units of (x(T) - target)^2, x(T) the state at the grid's
  last time;
- energy: the mean over time, conditions and units of the square of the state x, of the rates
  phi(x) or of the input drive B u(t).

They read `state.x`, `state.rates`, `state.y`, `state.drive` and `state.dynamics.task`: any
dynamics whose state gives these (tcnet_plugins.rnn.dynamics.RateState) can use them.
"""
import autograd.numpy as anp
import numpy as np

from tcnet import ConfigError, Loss
from tcnet.settings import Array, Choice, Settings


def task_of(state, who: str):
    task = getattr(state.dynamics, "task", None)
    if task is None:
        raise ConfigError(f"{who}: the {state.dynamics.name} network has no task (give the dynamics a task file)")
    return task


class Readout(Loss):
    """Masked mean squared error between the readout y(t) and the task's target."""

    name = "readout"

    def __call__(self, state):
        task = task_of(state, self.name)
        w = task.weights
        return anp.sum(w * (state.y - task.targets) ** 2) / np.sum(w)


class Endpoint(Loss):
    """Mean squared distance of the final state x(T) to a target state."""

    name = "endpoint"
    SETTINGS = Settings(Array("target", 0.0, "the target state: a number (every unit) or a list of N numbers"))

    def __call__(self, state):
        task_of(state, self.name)
        x = state.x[-1]
        target = np.asarray(self.config["target"], dtype=float)
        if target.ndim > 1 or target.size not in (1, x.shape[-1]):
            raise ConfigError(f"{self.name}: target must be a number or a list of N = {x.shape[-1]} numbers, got "
                              f"{target.size}")
        return anp.mean((x - target) ** 2)


class Energy(Loss):
    """Mean squared activity (state or rates) or input drive over time, conditions and units."""

    name = "energy"
    SETTINGS = Settings(Choice("of", "rate", "what is squared: 'state' x, 'rate' phi(x) or 'input' the drive B u(t)",
                               options=("state", "rate", "input")))

    def __call__(self, state):
        task_of(state, self.name)
        a = {"state": lambda: state.x, "rate": lambda: state.rates, "input": lambda: state.drive}[self.config["of"]]()
        return anp.mean(a ** 2)
