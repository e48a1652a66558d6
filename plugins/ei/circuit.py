"""The `ei_circuit` dynamics: K populations of rate units, each excitatory or inhibitory,

    tau_k dr_k/dt = -r_k + g_k f_k(x_k),   x_k = sum_j s_j W_kj r_j + h_k + u_k - theta_k,

s_j = +1 for an excitatory presynaptic population, -1 for an inhibitory one (Dale's law: the
sign belongs to the sender), W >= 0 the trainable K x K magnitudes (row: postsynaptic), h the
external inputs, u an extra input (a kick, a perturbation). The transfer f_k is the threshold
power law [x]_+^n_k (n = 1: threshold-linear) for smoothness s_k = 0, and the smooth
threshold-linear x / (1 - exp(-x/s_k)) for s_k > 0 (Garcia del Molino et al. 2017's f-I curve;
`tcnet_plugins.ei.presets`). `connections` (0/1, K x K) says which weights exist: the others
stay 0 and no rule changes them.

The steady state is the core's (tcnet.steady): the stable fixed point the protocol reaches (a
`kick` added to the inputs for `kick_duration` ms from rest, then `settle` ms), polished by
Newton, or the one on the branch of a given nearby steady state (a learning run's last one,
`steady_rates(W, near)`); its gradient in W comes from the implicit function theorem. The
two-population circuit of the "paradoxical" and "non_paradoxical" presets is ei_rate
(`tcnet_plugins.ei.model`), and tests/test_ei_circuit.py checks that every closed form there
equals this generic path.
"""
from collections import OrderedDict
from functools import cached_property

import autograd.numpy as anp
import numpy as np
from autograd import grad
from autograd.tracer import getval

from tcnet import ConfigError, Dynamics, State
from tcnet import steady as ss
from tcnet.integrate import VectorField
from tcnet.labels import Labels, Quantity
from tcnet.settings import Array, Choice, Real, Setting, Settings

from tcnet_plugins.ei.presets import FIELDS, PRESETS

MEMO = 16
"""Steady states a circuit remembers (by weights), so that a learning step's measurement and its
traced loss solve once."""


class CircuitField(VectorField):
    """The circuit's rate equations over the parameter tuple (W,), batched over conditions; u
    (C, K) is added to the populations' inputs."""

    def __init__(self, sign, tau, gain, threshold, exponent, smoothness, inputs):
        self.sign, self.tau, self.gain = sign, tau, gain
        self.offset = inputs - threshold
        self.exponent, self.smooth = exponent, smoothness > 0
        self.s = np.where(self.smooth, smoothness, 1.0)  # 1 where unused: keeps that branch finite

    def transfer(self, x):
        """f(x) per population (module docstring), traceable with finite gradients everywhere."""
        sharp = anp.maximum(x, 0.0) ** self.exponent
        if not np.any(self.smooth):
            return sharp
        y = anp.maximum(x / self.s, -300.0)
        small = anp.abs(y) < 1e-6
        y_safe = anp.where(small, 1.0, y)
        smooth = self.s * anp.where(small, 1.0 + 0.5 * y, y_safe / -anp.expm1(-y_safe))
        return anp.where(self.smooth, smooth, sharp)

    def slopes(self, x, W) -> np.ndarray:
        """g_k f_k'(x_k) at the rates x (K,) (numpy)."""
        drive = self.drive(np.asarray(x, dtype=float)[None], None, np.asarray(W, dtype=float))[0]
        return self.gain * grad(lambda d: anp.sum(self.transfer(d[None])))(drive)  # f is elementwise

    def linearized(self, x, W) -> "LinearizedField":
        """The field with each transfer replaced by its tangent at the rates x: its implicit
        derivative is the steady state's (for the branch of x), linear in the rates it is taken at."""
        return LinearizedField(self, self.slopes(x, W))

    def drive(self, x, u, W):
        """x_k of every population (C, K)."""
        out = anp.dot(x, anp.transpose(W * self.sign[None, :])) + self.offset
        return out if u is None else out + u

    def rhs(self, x, u, params):
        (W,) = params
        return (-x + self.gain * self.transfer(self.drive(x, u, W))) / self.tau


class LinearizedField(VectorField):
    """(-r + gs o x(r, W)) / tau: the circuit with fixed slopes gs = g f'(x*) (`CircuitField.linearized`)."""

    def __init__(self, field: CircuitField, slopes):
        self.field, self.slopes = field, slopes

    def rhs(self, x, u, params):
        (W,) = params
        return (-x + self.slopes * self.field.drive(x, u, W)) / self.field.tau


class CircuitState(State):
    """The steady rates of one weight matrix (traceable), their linearization and responses."""

    @cached_property
    def W(self):
        return self.params["W"]

    @cached_property
    def rates(self):
        """The steady rates (K,), NaN where the protocol reaches none; gradients by the implicit
        function theorem."""
        dyn = self.dynamics
        return ss.steady(dyn.field, (self.W,), dyn.steady_rates(getval(self.W)))

    @cached_property
    def reached(self) -> bool:
        return bool(np.all(np.isfinite(getval(self.rates))))

    @cached_property
    def jacobian(self) -> np.ndarray:
        """dF/dr at the steady state (K x K, 1/ms)."""
        return ss.jacobian(self.dynamics.field, (getval(self.W),), getval(self.rates))

    @cached_property
    def stable(self) -> bool:
        return self.reached and bool(np.all(np.linalg.eigvals(self.jacobian).real < 0))

    @cached_property
    def response(self) -> np.ndarray:
        """d r*/d h (K x K): the steady rates' response to a small change of each population's input."""
        K = self.dynamics.K
        return ss.response(self.dynamics.field, (getval(self.W),), getval(self.rates), np.zeros(K))

    @cached_property
    def paradoxical(self) -> np.ndarray:
        """Per population: True for an inhibitory population whose steady rate falls when its own
        input rises (d r_k / d h_k < 0: the paradoxical effect of an inhibition-stabilized network)."""
        return (self.dynamics.sign < 0) & (np.diag(self.response) < 0)


def _list_setting(name, doc):
    return Array(name, None, f"{doc}, one per population (null: the preset's)", shape=(None,))


class EICircuit(Dynamics):
    """K-population rate circuit with trainable weight magnitudes W (see the module docstring)."""

    name = "ei_circuit"
    trainable = ("W",)

    SETTINGS = Settings(
        Choice("preset", "del_molino_low", "a published circuit (tcnet_plugins.ei.presets)", options=tuple(PRESETS)),
        Setting("populations", None, "the populations' names, a list of K distinct strings (null: the preset's)"),
        Setting("types", None, "each population's type, a list of 'E' or 'I' (null: the preset's)"),
        _list_setting("tau", "time constants (ms, > 0)"),
        _list_setting("gain", "gains g (> 0)"),
        _list_setting("threshold", "thresholds theta"),
        _list_setting("exponent", "transfer exponents n (>= 1; 1 with smoothness > 0)"),
        _list_setting("smoothness", "transfer smoothness s (>= 0; 0: a sharp threshold)"),
        _list_setting("input", "external inputs h"),
        _list_setting("set_points", "set-point rates (Hz, > 0) of the `set_points` loss"),
        Array("connections", None, "which weights exist, a K x K list of 0/1 (null: the preset's)",
              shape=(None, None), integer=True, low=0),
        _list_setting("kick", "the protocol's kick added to each input from rest"),
        Real("kick_duration", None, "duration of the kick (ms; null: the preset's)", low=0, unit="ms"),
        Real("settle", None, "the protocol's time after the kick (ms; null: the preset's)", low=0, low_open=True,
             unit="ms"),
        Real("r_max", 1e4, "a protocol whose rates exceed it runs away (no steady state)", low=0, low_open=True),
        Array("W", None, "initial weight magnitudes, K x K (null: the preset's)", shape=(None, None), low=0,
              stored=False),
    )

    def __init__(self, arrays, config=None, seed=None, *, data=None):
        config = dict(config or {})
        preset = PRESETS[config.get("preset", "del_molino_low")] if config.get("preset", "del_molino_low") in \
            PRESETS else {}
        config.update({k: preset[k] for k in FIELDS if config.get(k) is None and k in preset})
        self._memo = OrderedDict()
        super().__init__(arrays, config, seed, data=data)
        self.labels = Labels(time=Quantity("t", "ms"), state=Quantity("rate", "Hz"), axis="population",
                             entries=tuple(self.config["populations"]))

    @classmethod
    def build(cls, seed, preset, W, **config):
        """The preset's circuit (its initial weights unless W is given); keys override it."""
        return cls({"W": PRESETS[preset]["W"] if W is None else W}, {"preset": preset, **config}, seed)

    @property
    def K(self) -> int:
        return len(self.config["populations"])

    @cached_property
    def sign(self) -> np.ndarray:
        return np.array([1.0 if t == "E" else -1.0 for t in self.config["types"]])

    @cached_property
    def mask(self) -> np.ndarray:
        """1.0 where a connection exists (K x K)."""
        return np.array(self.config["connections"], dtype=float)

    @cached_property
    def set_points(self) -> np.ndarray:
        return np.array(self.config["set_points"], dtype=float)

    def _vector(self, key) -> np.ndarray:
        return np.array(self.config[key], dtype=float)

    @cached_property
    def field(self) -> CircuitField:
        return CircuitField(self.sign, *(self._vector(k) for k in ("tau", "gain", "threshold", "exponent",
                                                                     "smoothness", "input")))

    @cached_property
    def protocol(self) -> ss.Protocol:
        c = self.config
        kick = [] if c["kick_duration"] == 0 else [(c["kick_duration"], np.array(c["kick"], dtype=float))]
        return ss.Protocol(start=(0.0,) * self.K, segments=(*kick, (c["settle"], None)), r_max=c["r_max"])

    def check(self):
        c, name = self.config, self.name
        pops, types = c["populations"], c["types"]
        if not (isinstance(pops, list) and pops and all(isinstance(p, str) and p for p in pops)
                and len(set(pops)) == len(pops)):
            raise ConfigError(f"{name}: populations must be a list of distinct non-empty names, got {pops!r}")
        K = len(pops)
        if not (isinstance(types, list) and len(types) == K and all(t in ("E", "I") for t in types)):
            raise ConfigError(f"{name}: types must be a list of {K} entries 'E' or 'I', got {types!r}")
        bounds = {"tau": (0, True), "gain": (0, True), "threshold": (None, False), "exponent": (1, False),
                  "smoothness": (0, False), "input": (None, False), "set_points": (0, True), "kick": (None, False)}
        for key, (low, open_) in bounds.items():
            v = np.asarray(c[key], dtype=float)
            if v.shape != (K,):
                raise ConfigError(f"{name}: {key} must have one entry per population ({K}), got {c[key]!r}")
            if low is not None and np.any(v <= low if open_ else v < low):
                raise ConfigError(f"{name}: {key} must be {'>' if open_ else '>='} {low} for every population, "
                                  f"got {c[key]!r}")
        if np.any((np.asarray(c["smoothness"]) > 0) & (np.asarray(c["exponent"]) != 1)):
            raise ConfigError(f"{name}: exponent must be 1 where smoothness > 0, got exponent {c['exponent']!r}")
        mask = np.asarray(c["connections"])
        if mask.shape != (K, K) or not np.all(np.isin(mask, (0, 1))):
            raise ConfigError(f"{name}: connections must be a {K} x {K} list of 0/1, got {c['connections']!r}")
        W = self.arrays["W"]
        if W.shape != (K, K) or not np.all(np.isfinite(W)) or np.any(W < 0):
            raise ConfigError(f"{name}: W must be a {K} x {K} array of finite magnitudes >= 0, got shape {W.shape}")
        if np.any(W[mask == 0] != 0):
            raise ConfigError(f"{name}: W must be 0 where connections is 0")

    def make_state(self, params) -> CircuitState:
        return CircuitState(self, params)

    def vector_field(self, params):
        return self.field, (params["W"],)

    def rhs(self, x, u, params):
        return self.field.rhs(x, u, (params["W"],))

    def steady_rates(self, W, near=None) -> np.ndarray:
        """The steady rates (K,) of the weights W: remembered for the last MEMO weights; else on the
        branch of `near` (Newton from it, tcnet.steady.follow), else the protocol's (`reach`)."""
        W = np.asarray(W, dtype=float)
        key = W.tobytes()
        if key not in self._memo:
            self._memo[key] = ss.follow(self.field, (W,), near, self.protocol)
            while len(self._memo) > MEMO:
                self._memo.popitem(last=False)
        return self._memo[key]

    def sample_initial(self, n, seed=0):
        """n initial rates uniform in [0, 2 set point] per population."""
        return np.random.default_rng(seed).uniform(0.0, 2.0, size=(n, self.K)) * self.set_points

    def summary(self):
        """The steady rates (NaN where none is reached), stability, and per inhibitory population
        whether it is paradoxical."""
        state = self.state()
        out = {f"r_{p}": float(r) for p, r in zip(self.config["populations"], state.rates)}
        out["stable"] = float(state.stable)
        if state.reached:
            out.update({f"paradoxical_{p}": float(v) for p, v, s in
                        zip(self.config["populations"], state.paradoxical, self.sign) if s < 0})
        return out
