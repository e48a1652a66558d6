"""A single-file plugin used by the framework tests: x in R^n with quadratic and log losses.

quadratic: 0.5 (x - c)^T H (x - c), minimum at c (closed form), so optimizers can be checked
against it; `logbarrier`: -sum(log(x)), non-finite for x <= 0, to exercise the non-finite guard.
"""
import autograd.numpy as anp
import numpy as np

from tcnet import ConfigError, Dynamics, Loss, State, hookimpl
from tcnet.settings import Array, Integer, Settings


class PointState(State):
    @property
    def x(self):
        return self.params["x"]


class Point(Dynamics):
    name = "point"
    trainable = ("x",)
    SETTINGS = Settings(Integer("n", 3, "dimension of x", low=1))

    @classmethod
    def build(cls, seed, n):
        return cls({"x": np.random.default_rng(seed).normal(size=n)}, {"n": n}, seed)

    def check(self):
        if self.arrays["x"].shape != (self.config["n"],):
            raise ConfigError(f"point: x must have shape ({self.config['n']},)")

    def make_state(self, params):
        return PointState(self, params)


class Quadratic(Loss):
    name = "quadratic"
    SETTINGS = Settings(Array("c", [1.0, -2.0, 0.5], "the minimum", shape=(None,)),
                        Array("h", [1.0, 4.0, 0.25], "the curvatures (diagonal of H; negative: a maximum)", shape=(None,)))

    def __init__(self, **config):
        super().__init__(**config)
        self.c, self.h = np.asarray(self.config["c"], dtype=float), np.asarray(self.config["h"], dtype=float)

    def __call__(self, state):
        d = state.x - self.c
        return 0.5 * anp.sum(self.h * d * d)


class LogBarrier(Loss):
    name = "logbarrier"

    def __call__(self, state):
        return -anp.sum(anp.log(state.x))


@hookimpl
def tcnet_dynamics():
    return [Point]


@hookimpl
def tcnet_losses():
    return [Quadratic, LogBarrier]
