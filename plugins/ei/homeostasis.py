"""E/I homeostasis: a two-population rate model whose four weights learn a homeostatic loss.

Plugins (names are per kind, so the loss and the naive rule may share the name `homeostatic`):
- dynamics `ei_rate`: parameters g_E, g_I (gains, > 0: the set-point weights divide by them),
  Theta_E, Theta_I, I_ext (any real), tau_E, tau_I (ms, > 0), E_set, I_set (> 0); `preset`
  "paradoxical" (default) or "non_paradoxical" gives the parameter sets of the original
  notebooks, single keys override it. Trainable array `W` = (W_EE, W_EI, W_IE, W_II) >= 0.
  The state's QSS rates are the closed-form Up state (Down state E = I = 0 where it does not
  exist), traceable by autograd; see `tcnet_plugins.ei.model` for every formula.
- loss `homeostatic`: L = (E - E_set)^2/2 + (I - I_set)^2/2 at the QSS (set points default to the
  dynamics' E_set, I_set).
- optimizers (learning rules) `exact`, `small_weight`, `up_state`, `cross_homeostatic` and
  `homeostatic` (the naive rule): each step W <- max(W + dW(E, I, W), 0). Settings: lr (eta),
  steps, mode ("qss": rates at the fixed point of the current weights; "trials": each step is a
  trial that starts at E = I = 0, kicks the excitatory input by `kick` for `kick_duration` ms,
  integrates the rate ODE for `trial_length` ms and averages the rates over the last `average`
  ms, 0 meaning the end value), rtol (> 0: stop once both rates the rule used, the trial's in
  trials mode, are within rtol of the set points with a stable Up state; short trials whose rates
  have not settled can stop while the QSS rates are further off), r_max (a trial whose rates exceed it is a runaway and ends the
  run with status no_progress). Every step reports extra E, I (rates the rule used), E_qss,
  I_qss, up, stable, paradoxical to the run history.
- command `tcnet ei-study`: the comparative study of the rules (see `tcnet_plugins.ei.study`).
"""
from functools import cached_property

import autograd.numpy as anp
import numpy as np
from autograd import jacobian as ag_jacobian
from autograd.tracer import getval

from tcnet import ConfigError, Dynamics, Loss, Optimizer, Result, State
from tcnet.labels import Labels, Quantity
from tcnet.validate import array, choice, integer, no_extra, positive, real

from tcnet_plugins.ei import model as ei


def resolve_parameters(owner, config) -> dict:
    """The model parameters of a config: its preset's values overridden by explicit keys."""
    preset = choice(owner, "preset", config.get("preset", "paradoxical"), tuple(ei.PRESETS))
    p = dict(ei.PRESETS[preset]["params"])
    for key in ei.PARAMETERS:
        if key in config:
            p[key] = config[key]
    for key in ("Theta_E", "Theta_I", "I_ext"):
        p[key] = real(owner, key, p[key])
    for key in ("g_E", "g_I", "tau_E", "tau_I", "E_set", "I_set"):
        p[key] = positive(owner, key, p[key])
    return p


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
        summary={"E_up": Quantity("Up-state rate E", "Hz"), "I_up": Quantity("Up-state rate I", "Hz"),
                 "up": Quantity("Up state exists"), "stable": Quantity("Up state stable"),
                 "paradoxical": Quantity("paradoxical"), "W_EI_set": Quantity("set-point W_EI"),
                 "W_II_set": Quantity("set-point W_II")},
        headline=("E_up", "I_up"))

    @classmethod
    def create(cls, seed=0, preset="paradoxical", W=None, **params):
        """The preset's network (its initial weights unless W is given); keys override parameters."""
        no_extra(cls.name, params, ei.PARAMETERS)
        choice(cls.name, "preset", preset, tuple(ei.PRESETS))
        W = ei.PRESETS[preset]["W"] if W is None else W
        return cls({"W": W}, {"preset": preset, **params}, seed)

    def check(self):
        no_extra(self.name, self.config, ("preset", *ei.PARAMETERS))
        self.p = resolve_parameters(self.name, self.config)
        W = array(self.name, "W", self.arrays["W"], shape=(4,))
        if np.any(W < 0):
            raise ConfigError(f"{self.name}: W = (W_EE, W_EI, W_IE, W_II) must be >= 0, got {W.tolist()}")

    def make_state(self, params):
        return EIState(self, params)

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
            out[(slice(None),) + idx] = ei.integrate(self.arrays["W"], self.p, x0[idx], t, kick,
                                                     kick_duration, r_max)
        return out

    def sample_initial(self, n, seed=0):
        """n initial rates uniform in [0, 2 E_set] x [0, 2 I_set]."""
        rng = np.random.default_rng(seed)
        return rng.uniform(0.0, 1.0, size=(n, 2)) * 2.0 * np.array([self.p["E_set"], self.p["I_set"]])

    def trajectory_metrics(self, t, x):
        """Each trajectory's rates (Hz) at the last time."""
        return {"E(t_max) [Hz]": x[-1, :, 0], "I(t_max) [Hz]": x[-1, :, 1]}

    def summary(self):
        W, p = self.arrays["W"], self.p
        E, I = ei.fixed_point(W, p)
        tr, det = ei.trace_det(W, p)
        W_EI_set, W_II_set = ei.set_point_weights(W[0], W[2], p)
        return {"E_up": float(E), "I_up": float(I), "up": float(ei.up_exists(W, p)),
                "trace": float(tr), "det": float(det), "stable": float(ei.stable_up(W, p)),
                "paradoxical": float(ei.paradoxical_coefficient(W, p) > 0),
                "W_EI_set": float(W_EI_set), "W_II_set": float(W_II_set)}


class Homeostatic(Loss):
    """L = (E - E_set)^2/2 + (I - I_set)^2/2 at the QSS rates of an `ei_rate` state."""

    name = "homeostatic"

    def __init__(self, E_set=None, I_set=None):
        super().__init__(E_set=E_set, I_set=I_set)
        self.E_set = None if E_set is None else positive(self.name, "E_set", E_set)
        self.I_set = None if I_set is None else positive(self.name, "I_set", I_set)

    def set_points(self, dynamics) -> tuple[float, float]:
        p = dynamics.p
        return (p["E_set"] if self.E_set is None else self.E_set,
                p["I_set"] if self.I_set is None else self.I_set)

    def __call__(self, state):
        E_set, I_set = self.set_points(state.dynamics)
        return 0.5 * (state.E - E_set) ** 2 + 0.5 * (state.I - I_set) ** 2


class LearningRule(Optimizer):
    """A local plasticity rule dW(E, I, W) applied in QSS or in simulated trials (see module doc)."""

    rule = ""
    defaults = {"lr": 1e-3, "steps": 5000, "mode": "qss", "rtol": 0.0, "trial_length": 300.0,
                "kick": 10.0, "kick_duration": 10.0, "average": 100.0, "r_max": 1e3}

    def check(self):
        s = self.settings
        positive(self.name, "lr", s["lr"])
        integer(self.name, "steps", s["steps"], low=0)
        choice(self.name, "mode", s["mode"], ("qss", "trials"))
        real(self.name, "rtol", s["rtol"], low=0)
        positive(self.name, "trial_length", s["trial_length"])
        real(self.name, "kick", s["kick"])
        real(self.name, "kick_duration", s["kick_duration"], low=0, high=s["trial_length"])
        real(self.name, "average", s["average"], low=0, high=s["trial_length"] - s["kick_duration"])
        positive(self.name, "r_max", s["r_max"])

    def _model(self, objective):
        """The ei_rate dynamics and its parameters with the homeostatic term's set points."""
        dyn = objective.dynamics
        if not isinstance(dyn, EIRate):
            raise ConfigError(f"{self.name}: the learning rules need dynamics 'ei_rate', got {dyn.name!r}")
        losses = [t.loss for t in objective.terms if isinstance(t.loss, Homeostatic)]
        if not losses:
            raise ConfigError(f"{self.name}: the objective needs a 'homeostatic' loss term (the set points)")
        E_set, I_set = losses[0].set_points(dyn)
        return dyn, {**dyn.p, "E_set": E_set, "I_set": I_set}

    def trial_rates(self, dyn, W):
        """(E, I) of one trial: kick from E = I = 0, integrate, average the end window."""
        s = self.settings
        T = s["trial_length"]
        t = np.concatenate([[0.0], np.linspace(T - s["average"], T, 51)]) if s["average"] > 0 else np.array([0.0, T])
        r = ei.integrate(W, dyn.p, (0.0, 0.0), t, s["kick"], s["kick_duration"], s["r_max"])[1:]
        return float(np.mean(r[:, 0])), float(np.mean(r[:, 1]))

    def update(self, objective, ev, W, E, I, p):
        """dW for this step (subclasses with a non-local form override)."""
        return np.asarray(ei.rule_update(self.rule, E, I, W, p, self.settings["lr"]), dtype=float)

    def iterate(self, objective, x0, monitor, opt_state):
        dyn, p = self._model(objective)
        s = self.settings
        t, x, first = opt_state.get("t", 0), x0, True
        while True:
            ev = monitor.evaluate(objective, x)
            E_q, I_q = (float(r) for r in ei.fixed_point(x, p))
            E, I = self.trial_rates(dyn, x) if s["mode"] == "trials" else (E_q, I_q)
            stable = bool(ei.stable_up(x, p))
            extra = {"E": E, "I": I, "E_qss": E_q, "I_qss": I_q, "up": float(ei.up_exists(x, p)),
                     "stable": float(stable), "paradoxical": float(ei.paradoxical_coefficient(x, p) > 0)}
            if monitor.report(x, ev, opt_state={"t": t}, extra=extra, initial=first):
                return Result(x, "stopped", "stopped by callback", t, monitor.evaluations)
            if not (np.isfinite(E) and np.isfinite(I)):
                return Result(x, "no_progress", f"step {t}: trial rates exceeded r_max = {s['r_max']} "
                              "(runaway excitation)", t, monitor.evaluations)
            within = abs(E - p["E_set"]) <= s["rtol"] * p["E_set"] and abs(I - p["I_set"]) <= s["rtol"] * p["I_set"]
            if s["rtol"] > 0 and within and stable:
                return Result(x, "converged", f"rates within rtol = {s['rtol']} of the set points, "
                              "stable Up state", t, monitor.evaluations)
            if t >= s["steps"]:
                return Result(x, "max_steps", f"{s['steps']} steps done", t, monitor.evaluations)
            x = np.maximum(x + self.update(objective, ev, x, E, I, p), 0.0)
            t, first = t + 1, False


class Exact(LearningRule):
    """-eta dL/dW through the fixed point by autograd. In QSS mode it is the objective's gradient;
    in trials mode the chain rule with the trial's rate errors: dW = -eta S^T (r_trial - r_set),
    S = d(E*, I*)/dW by autograd at the fixed point of the current weights."""

    name = rule = "exact"

    def update(self, objective, ev, W, E, I, p):
        if self.settings["mode"] == "qss":
            return -self.settings["lr"] * ev.grad
        dyn = objective.dynamics
        S = ag_jacobian(lambda w: anp.stack(dyn.state(w).rates))(W)
        return -self.settings["lr"] * (S.T @ np.array([E - p["E_set"], I - p["I_set"]]))


class SmallWeight(LearningRule):
    """First-order expansion of dE/dW, dI/dW around W = 0 (E, I unexpanded)."""

    name = rule = "small_weight"


class UpState(LearningRule):
    """Zeroth-order expansion around the set-point weights (the seed's AA, BB, CC, DD form).
    `reference` = [W_EE, W_IE] fixes the expansion point; null (default) uses the current ones."""

    name = rule = "up_state"
    defaults = {**LearningRule.defaults, "reference": None}

    def check(self):
        super().check()
        ref = self.settings["reference"]
        if ref is not None:
            ref = array(self.name, "reference", ref, shape=(2,))
            self.settings["reference"] = [float(v) for v in ref]

    def update(self, objective, ev, W, E, I, p):
        ref = self.settings["reference"]
        return np.asarray(ei.rule_update(self.rule, E, I, W, p, self.settings["lr"],
                                         None if ref is None else tuple(ref)), dtype=float)


class CrossHomeostatic(LearningRule):
    """dW_EE = eta E (I_set - I), dW_EI = -eta I (I_set - I), dW_IE = -eta E (E_set - E),
    dW_II = eta I (E_set - E) (Soldado-Magraner et al. 2022)."""

    name = rule = "cross_homeostatic"


class NaiveHomeostatic(LearningRule):
    """Each population's own error drives its input weights: dW_EE = eta E (E_set - E),
    dW_EI = -eta I (E_set - E), dW_IE = eta E (I_set - I), dW_II = -eta I (I_set - I)."""

    name = rule = "homeostatic"
