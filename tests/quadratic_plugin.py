"""A single-file plugin used by the framework tests: x in R^n with quadratic and log losses.

quadratic: 0.5 (x - c)^T H (x - c), minimum at c (closed form), so optimizers can be checked
against it; `logbarrier`: -sum(log(x)), non-finite for x <= 0, to exercise the non-finite guard.
"""
import autograd.numpy as anp
import numpy as np

from tcnet import ConfigError, Dynamics, Loss, State, hookimpl


class PointState(State):
    @property
    def x(self):
        return self.params["x"]


class Point(Dynamics):
    name = "point"
    trainable = ("x",)

    @classmethod
    def create(cls, seed=0, n=3):
        return cls({"x": np.random.default_rng(seed).normal(size=n)}, {"n": n}, seed)

    def check(self):
        if self.arrays["x"].shape != (self.config["n"],):
            raise ConfigError(f"point: x must have shape ({self.config['n']},)")

    def make_state(self, params):
        return PointState(self, params)


class Quadratic(Loss):
    name = "quadratic"

    def __init__(self, c=(1.0, -2.0, 0.5), h=(1.0, 4.0, 0.25)):
        super().__init__(c=list(c), h=list(h))
        self.c, self.h = np.asarray(c), np.asarray(h)

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
