"""The `rate_network` dynamics: a nonlinear rate network driven by time-varying inputs,

    tau dx/dt = -x + J phi(x) + B u(t) + b,    readout y = W phi(x),

with J (N x N), B (N x inputs), W (outputs x N), b (N) and the initial state x0 (N) that every
condition starts from unless its task gives one. With `rank` r > 0, J = J0 + U V: J0 is fixed (drawn
N(0, g^2/N)) and the low-rank U (N x r), V (r x N) are trained, as in the preparatory model.
`trainable` picks the arrays the optimizer changes.

The network holds its task (tcnet.task.Task: the conditions' inputs, targets, optional initial
states and mask) as fixed data, the arrays task_t, task_u, task_target, task_x0, task_mask: a
stored network reloads with the conditions it was trained on, and re-simulates them. Its state
integrates all conditions at once (`RateState.x`, (T, C, N)) through tcnet.integrate, whose
adjoint uses the field's analytic Jacobian-vector products (`RateField`); the trajectory losses
(`tcnet_plugins.rnn.losses`) read x, the rates, the readout y and the input drive from it.
"""
from functools import cached_property

import autograd.numpy as anp
import numpy as np

from tcnet import ConfigError, Dynamics, State
from tcnet.integrate import ORDER, SCHEMES, VectorField
from tcnet.labels import Labels, Quantity
from tcnet.settings import Choice, Integer, Real, Setting, Settings, Text
from tcnet.task import Task
from tcnet.validate import array
from tcnet_plugins.rnn.nonlinearity import NAMES, Nonlinearity

ARRAYS = ("J", "U", "V", "B", "W", "b", "x0")
"""Every parameter array, in the order of theta."""
TASK = {"t": "task_t", "u": "task_u", "target": "task_target", "x0": "task_x0", "mask": "task_mask"}
"""The task's arrays and the data arrays a network keeps them in."""


class RateField(VectorField):
    """f(x, u) = (-x + J phi(x) + B u + b) / tau over the parameters (J, B, b), with analytic
    VJPs: per stage f_x^T g = (-g + phi'(x) o (J^T g)) / tau and f_u^T g = B^T g / tau; for a block
    of stages with rates R and cotangents G (one row each) dJ = G^T R / tau, dB = G^T U / tau,
    db = sum G / tau. The cache of a stage is its rates phi(x)."""

    def __init__(self, tau: float, phi: Nonlinearity):
        self.tau, self.phi = tau, phi

    def rhs(self, x, u, params):
        J, B, b = params
        out = anp.dot(self.phi(x), anp.transpose(J)) - x + b
        return (out if u is None else out + anp.dot(u, anp.transpose(B))) / self.tau

    def step(self, x, u, params):
        J, B, b = params
        r = self.phi.numpy(x)
        k = r @ J.T
        k -= x
        k += b
        if u is not None:
            k += u @ B.T
        k *= 1.0 / self.tau
        return k, r

    def vjp_state(self, r, u, g, params):
        J, B, _ = params
        gx = self.phi.slope(r) * (g @ J)
        gx -= g
        gx *= 1.0 / self.tau
        return gx, None if u is None else (g @ B) / self.tau

    def vjp_params(self, R, U, G, params):
        J, B, _ = params
        gB = np.zeros_like(B) if U is None else G.T @ U / self.tau
        return G.T @ R / self.tau, gB, G.sum(axis=0) / self.tau


class RateState(State):
    """The task's trajectories at one parameter setting, computed once (traceable)."""

    @cached_property
    def x0(self):
        """The initial states (C, N): the task's, or the network's x0 for every condition."""
        task = self.dynamics.require_task("state")
        if task.x0 is not None:
            return task.x0
        return anp.ones((task.conditions, 1)) * self.params["x0"][None, :]

    @cached_property
    def inputs(self):
        """The task's inputs u (T, C, m) on its grid; None without inputs."""
        return self.dynamics.require_task("state").inputs

    @cached_property
    def x(self):
        """States (T, C, N) of every condition of the task on its grid."""
        return self.trajectory(self.x0, self.dynamics.require_task("state").t, self.inputs)

    @cached_property
    def rates(self):
        """phi(x) (T, C, N)."""
        return self.dynamics.phi(self.x)

    @cached_property
    def y(self):
        """The readout W phi(x) (T, C, outputs)."""
        return anp.dot(self.rates, anp.transpose(self.params["W"]))

    @cached_property
    def drive(self):
        """The input drive B u(t) (T, C, N) on the grid (zero without inputs)."""
        if self.inputs is None:
            task = self.dynamics.require_task("state")
            return np.zeros((len(task.t), task.conditions, self.dynamics.N))
        return anp.dot(self.inputs, anp.transpose(self.params["B"]))


class RateNetwork(Dynamics):
    """tau dx/dt = -x + J phi(x) + B u + b, y = W phi(x) (see the module docstring)."""

    name = "rate_network"
    data_names = tuple(TASK.values())
    labels = Labels(
        time=Quantity("t", "s"), state=Quantity("activity x"), axis="unit",
        config={"N": Quantity("N"), "tau": Quantity("tau", "s"), "rank": Quantity("rank of U V")},
        summary={"readout_error": Quantity("readout MSE / target variance"),
                 "spectral_abscissa": Quantity("spectral abscissa of the linearization at x0", "1/s")},
        headline=("readout_error",))

    SETTINGS = Settings(
        Integer("N", 50, "number of units", low=1),
        Integer("inputs", None, "number of inputs (null: the task's, 0 without a task)", low=0),
        Integer("outputs", None, "number of readouts (null: the task's, 1 without a task)", low=1),
        Real("tau", 0.01, "time constant", low=0, low_open=True, unit="s"),
        Choice("phi", "tanh", "the rate nonlinearity (tcnet_plugins.rnn.nonlinearity)", options=NAMES),
        Real("exponent", 2.0, "the exponent n of phi = 'power' ([x]_+^n)", low=1),
        Real("g", 1.5, "spread of the initial J (or J0): entries N(0, g^2/N)", low=0),
        Integer("rank", 0, "0: J trained in full; r > 0: J = J0 + U V, J0 fixed, U (N x r) and V (r x N) trained",
                low=0),
        Choice("method", "rk4", "the integration scheme (tcnet.integrate)", options=tuple(SCHEMES)),
        Real("dt", None, "the largest integration step (null: the task grid's steps)", low=0, low_open=True,
             unit="s"),
        Setting("trainable", None, "the arrays the optimizer changes, a list of J (or U, V with rank > 0), B, W, b, "
                "x0 (null: all but x0)"),
        Text("task", None, "a task file (.npz or HDF5: t, u, target, optional x0, mask; docs/SPEC.md)",
             stored=False),
    )

    def __init__(self, arrays, config=None, seed=None, *, data=None):
        config = dict(config or {})
        self.trainable = self.trainable_arrays(config.get("rank") or 0, config.get("trainable"))
        super().__init__(arrays, config, seed, data=data)

    @classmethod
    def trainable_arrays(cls, rank: int, names) -> tuple:
        """The trainable arrays in theta's order; `names` checked against what the rank allows."""
        allowed = (*(("U", "V") if rank else ("J",)), "B", "W", "b", "x0")
        if names is None:
            names = [k for k in allowed if k != "x0"]
        if (not isinstance(names, list) or not names or not all(isinstance(k, str) for k in names)
                or len(set(names)) != len(names) or set(names) - set(allowed)):
            raise ConfigError(f"{cls.name}: trainable must be a list of distinct names among {', '.join(allowed)} "
                              f"(rank {rank}), got {names!r}")
        return tuple(k for k in ARRAYS if k in names)

    @classmethod
    def relate(cls, settings):
        cls.trainable_arrays(settings["rank"], settings["trainable"])
        if settings["rank"] > settings["N"]:
            raise ConfigError(f"{cls.name}: rank must be at most N = {settings['N']}, got {settings['rank']}")

    @classmethod
    def build(cls, seed, *, task, **config):
        """A network drawn from `seed`: J (or J0) N(0, g^2/N), U, V, B, W N(0, 1/N) (B N(0, 1)), b = x0 = 0;
        with the task of the file `task`, whose sizes fill in inputs and outputs."""
        data = {}
        if task is not None:
            t = Task.read(task)
            data = {TASK[k]: a for k, a in t.arrays().items()}
            for key, n in (("inputs", t.n_inputs), ("outputs", t.n_outputs)):
                if config[key] is not None and config[key] != n:
                    raise ConfigError(f"{cls.name}: {key} = {config[key]} but the task {task!r} has {n}")
                config[key] = n
        config["inputs"] = 0 if config["inputs"] is None else config["inputs"]
        config["outputs"] = 1 if config["outputs"] is None else config["outputs"]
        N, r, m, k = config["N"], config["rank"], config["inputs"], config["outputs"]
        rng = np.random.default_rng(seed)
        J = rng.standard_normal((N, N)) * config["g"] / np.sqrt(N)
        arrays = {"J0": J, "U": rng.standard_normal((N, r)) / np.sqrt(N),
                  "V": rng.standard_normal((r, N)) / np.sqrt(N)} if r else {"J": J}
        arrays.update(B=rng.standard_normal((N, m)), W=rng.standard_normal((k, N)) / np.sqrt(N), b=np.zeros(N),
                      x0=np.zeros(N))
        return cls({**arrays, **data}, config, seed)

    @property
    def N(self) -> int:
        return self.config["N"]

    @property
    def rank(self) -> int:
        return self.config["rank"]

    @cached_property
    def phi(self) -> Nonlinearity:
        return Nonlinearity(self.config["phi"], self.config["exponent"])

    @property
    def integration(self) -> dict:
        return {"scheme": self.config["method"], "dt": self.config["dt"]}

    @property
    def order(self) -> int:
        """The global order of accuracy of its scheme."""
        return ORDER[self.config["method"]]

    def prepare_data(self, data):
        """The task's arrays checked as a task (tcnet.task.Task) and against the network's sizes."""
        if not data:
            return data
        missing = [TASK[k] for k in ("t", "u", "target") if TASK[k] not in data]
        if missing:
            raise ConfigError(f"{self.name}: the task's data lacks {', '.join(missing)}")
        task = Task.from_arrays({k: data[v] for k, v in TASK.items() if v in data}, "the network's data")
        return {TASK[k]: a for k, a in task.arrays().items()}

    @cached_property
    def task(self) -> Task | None:
        """The task of its data, None without one."""
        if not self.data:
            return None
        return Task(**{k: self.data.get(v) for k, v in TASK.items()})

    def require_task(self, who: str) -> Task:
        if self.task is None:
            raise ConfigError(f"{who}: the {self.name} network has no task (give the dynamics a task file: "
                              "task = \"FILE.npz\")")
        return self.task

    def check(self):
        N, r, m, k = self.N, self.rank, self.config["inputs"], self.config["outputs"]
        if m is None or k is None:
            raise ConfigError(f"{self.name}: inputs and outputs must be numbers in a network's configuration")
        shapes = {"B": (N, m), "W": (k, N), "b": (N,), "x0": (N,),
                  **({"J0": (N, N), "U": (N, r), "V": (r, N)} if r else {"J": (N, N)})}
        extra = sorted(set(self.arrays) - set(shapes))
        if extra:
            raise ConfigError(f"{self.name}: unknown array(s) {', '.join(extra)}; expected {', '.join(shapes)}")
        for key, shape in shapes.items():
            if key not in self.arrays:
                raise ConfigError(f"{self.name}: missing parameter array {key}")
            array(self.name, key, self.arrays[key], shape)
        task = self.task
        if task is not None:
            if (task.n_inputs, task.n_outputs) != (m, k):
                raise ConfigError(f"{self.name}: the task has {task.n_inputs} input(s) and {task.n_outputs} "
                                  f"output(s), the network {m} and {k}")
            if task.x0 is not None and task.x0.shape[1] != N:
                raise ConfigError(f"{self.name}: the task's x0 must have shape ({task.conditions}, N = {N}), got "
                                  f"{task.x0.shape}")
            if task.x0 is not None and "x0" in self.trainable:
                raise ConfigError(f"{self.name}: x0 cannot be trainable when the task gives each condition's x0")

    def make_state(self, params) -> RateState:
        return RateState(self, params)

    def vector_field(self, params):
        """The analytic field over (J, B, b); J = J0 + U V with rank > 0."""
        J = params["J0"] + anp.dot(params["U"], params["V"]) if self.rank else params["J"]
        return RateField(self.config["tau"], self.phi), (J, params["B"], params["b"])

    def rhs(self, x, u, params):
        field, p = self.vector_field(params)
        return field.rhs(x, u, p)

    @property
    def connectivity(self) -> np.ndarray:
        """J (J0 + U V with rank > 0)."""
        a = self.arrays
        return a["J0"] + a["U"] @ a["V"] if self.rank else a["J"]

    def linearization(self, x) -> np.ndarray:
        """The Jacobian of f at the state x (N,) without input: (-I + J diag(phi'(x))) / tau."""
        slope = self.phi.slope(self.phi.numpy(np.asarray(x, dtype=float)))
        return (self.connectivity * slope[None, :] - np.eye(self.N)) / self.config["tau"]

    def readout(self, x):
        return self.phi.numpy(np.asarray(x, dtype=float)) @ self.arrays["W"].T

    def sample_initial(self, n, seed=0):
        """n copies of the network's initial state x0 (it has no distribution of initial states)."""
        return np.tile(self.arrays["x0"], (n, 1))

    def readout_error(self) -> float:
        """The task's masked readout MSE over the targets' (masked) variance."""
        task = self.require_task("readout_error")
        w = task.weights
        y = self.state().y
        mean = np.sum(w * task.targets) / np.sum(w)
        return float(np.sum(w * (y - task.targets) ** 2) / np.sum(w * (task.targets - mean) ** 2))

    def summary(self):
        """The spectral abscissa of the linearization at x0 and, with a task, the readout error."""
        out = {"spectral_abscissa": float(np.max(np.linalg.eigvals(self.linearization(self.arrays["x0"])).real))}
        if self.task is not None:
            out["readout_error"] = self.readout_error()
        return out
