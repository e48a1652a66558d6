"""Test-only plugin for the store tests: a small linear rate network and a slowable convex loss.

Dynamics `store_linear`: tau dx/dt = -x + J x, arrays J (N x N, trainable) and a readout w (not
trainable), config {"N", "tau"}. Trajectories are exact: x(t) = expm(A t) x0 with A = (J - I)/tau.

Loss `store_bowl`: sum_ij (J_ij - c)^2 + 0.1 sum_ij sin(3 J_ij), separable and strongly convex
(second derivative 2 - 0.9 sin(3 J) >= 1.1), so its minimum is unique and can be found entry by
entry with a 1-D root solve. `delay` seconds of sleep per evaluation slow a run down on purpose
(for the SIGKILL test) without changing any value.
"""
import time

import autograd.numpy as anp
import numpy as np
import scipy.linalg

from tcnet import Dynamics, Loss, Optimizer, Result, State, hookimpl
from tcnet.settings import Integer, Real, Settings
from tcnet.validate import array


class LinearState(State):
    @property
    def J(self):
        return self.params["J"]


class StoreLinear(Dynamics):
    name = "store_linear"
    trainable = ("J",)
    SETTINGS = Settings(Integer("N", 3, "number of units", low=1),
                        Real("tau", 1.0, "time constant", low=0, low_open=True, unit="s"))

    @classmethod
    def build(cls, seed, N, tau):
        rng = np.random.default_rng(seed)
        J = 0.5 * rng.normal(size=(N, N)) / np.sqrt(N)
        return cls({"J": J, "w": rng.normal(size=N)}, {"N": N, "tau": tau}, seed)

    def check(self):
        n = self.config["N"]
        array(self.name, "J", self.arrays["J"], (n, n))
        array(self.name, "w", self.arrays["w"], (n,))

    def make_state(self, params):
        return LinearState(self, params)

    @property
    def A(self):
        return (self.arrays["J"] - np.eye(self.config["N"])) / self.config["tau"]

    def simulate(self, x0, t):
        x0 = np.asarray(x0, dtype=float)
        return np.stack([x0 @ scipy.linalg.expm(self.A * ti).T for ti in np.asarray(t, dtype=float)])

    def sample_initial(self, n, seed=0):
        return np.random.default_rng(seed).normal(size=(n, self.config["N"]))

    def summary(self):
        return {"spectral_abscissa": float(np.max(np.linalg.eigvals(self.A).real))}

    def trajectory_metrics(self, t, x):
        """When each trajectory's norm falls to 1/e and to 0.1 of its start (the preparatory plugin's
        crossing_time: what a dynamics declares, `tcnet simulate` prints)."""
        from tcnet_plugins.preparatory.analysis import crossing_time

        ratio = np.linalg.norm(x, axis=-1) / np.linalg.norm(x[0], axis=-1)
        return {name: np.array([crossing_time(t, r, f) for r in ratio.T])
                for name, f in (("t(1/e)", np.exp(-1)), ("t(0.1)", 0.1))}


class Bowl(Loss):
    name = "store_bowl"
    SETTINGS = Settings(Real("c", 0.3, "the entries' target"),
                        Real("delay", 0.0, "sleep per evaluation", low=0, unit="s"))

    def __call__(self, state):
        if self.config["delay"]:
            time.sleep(self.config["delay"])
        d = state.J - self.config["c"]
        return anp.sum(d * d) + 0.1 * anp.sum(anp.sin(3 * state.J))


class StaticNet(Dynamics):
    """A network without time evolution (simulate raises NotImplementedError)."""

    name = "store_static"
    trainable = ("b",)
    SETTINGS = Settings(Integer("n", 2, "number of parameters", low=1))

    @classmethod
    def build(cls, seed, n):
        return cls({"b": np.random.default_rng(seed).normal(size=n)}, {"n": n}, seed)

    def make_state(self, params):
        return State(self, params)


class ProbeGD(Optimizer):
    """Plain gradient descent whose reports exercise every storable kind: optimizer state with
    ints, strings, None, lists, nested arrays, and an extra scalar that appears only from step 2."""

    name = "store_probe_gd"
    SETTINGS = Settings(Integer("steps", 5, "updates", low=0), Real("lr", 0.1, "step size", low=0))

    def iterate(self, objective, x0, monitor, opt_state):
        start, x = opt_state.get("t", 0), x0
        for t in range(start, self.settings["steps"] + 1):
            if t > start:
                x = x - self.settings["lr"] * ev.grad
            ev = monitor.evaluate(objective, x)
            state = {"t": t, "rule": "gd", "nothing": None, "pair": [1.0, 2.0], "flag": True,
                     "scale": 0.5, "moments": {"g": ev.grad.copy()}}
            monitor.report(x, ev, opt_state=state, extra={"t_half": t / 2} if t >= 2 else {}, initial=(t == start))
        return Result(x, "max_steps", "done", self.settings["steps"], monitor.evaluations)


@hookimpl
def tcnet_optimizers():
    return [ProbeGD]


@hookimpl
def tcnet_dynamics():
    return [StoreLinear, StaticNet]


@hookimpl
def tcnet_losses():
    return [Bowl]
