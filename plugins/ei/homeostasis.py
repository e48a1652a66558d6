"""E/I homeostasis: a two-population rate model whose four weights learn a homeostatic loss.

Plugins (names are per kind, so the loss and the naive rule may share the name `homeostatic`):
- dynamics `ei_rate`: parameters g_E, g_I (gains, > 0: the set-point weights divide by them),
  Theta_E, Theta_I, I_ext (any real), tau_E, tau_I (ms, > 0), E_set, I_set (> 0); `preset`
  "paradoxical" (default) or "non_paradoxical" gives the parameter sets of the original
  notebooks, single keys override it. Trainable array `W` = (W_EE, W_EI, W_IE, W_II) >= 0.
  The state's QSS rates are the fixed point a kicked trial from rest reaches (`model.steady_state`:
  every fixed point of the four linear regions, the stable one with the largest E; NaN where none
  is stable), traceable by autograd; see `tcnet_plugins.ei.model` for every formula.
- loss `homeostatic`: L = (E - E_set)^2/2 + (I - I_set)^2/2 at the QSS (set points default to the
  dynamics' E_set, I_set).
- optimizers (learning rules) `exact`, `small_weight`, `up_state`, `cross_homeostatic` and
  `homeostatic` (the naive rule). Each step takes the rates of the current weights, low-passes
  them across steps (avg <- avg + smoothing (rate - avg), from 0; smoothing 1 uses each step's
  rates), shows the rule max(rate_floor, avg), and sets W <- max(W + dW(E, I, W), w_min).
  Settings: lr (eta), steps, mode ("qss": the rates of the fixed point of the current weights;
  "trials": each step is a simulated trial from rest, see `tcnet_plugins.ei.trials` for the
  trial settings integrator, dt, trial_length, kick, kick_onset, kick_duration, average, noise,
  noise_relaxation, clip, r_max, seed), smoothing, rate_floor, w_min, rtol (> 0: stop once both
  rates the rule sees are within rtol of the set points with a stable Up state), and protocol
  (null, or "soldado2022": the published trial protocol and learning settings as one preset;
  keys given explicitly override it). A trial whose rates exceed r_max is a runaway and ends the
  run with status no_progress. Every step reports extra E, I (rates the rule used), E_trial,
  I_trial (this step's own rates), E_qss, I_qss, regime (the model.REGIONS index of the QSS in
  QSS mode, of the trial's rates in trials mode; -1 runaway), up, stable, paradoxical to the run
  history; a QSS run reaching weights without a steady state ends with status no_progress;
  its loss is the homeostatic loss at the QSS, with its gradient norm in QSS mode only (in
  trials mode no rule uses the gradient, and autograd would cost more than the trial).
- command `tcnet ei-study`: the comparative study of the rules (see `tcnet_plugins.ei.study`).
"""
from dataclasses import replace
from functools import cached_property

import autograd.numpy as anp
import numpy as np
from autograd.tracer import getval

from tcnet import ConfigError, Dynamics, Iterative, Loss, State
from tcnet.labels import Labels, Quantity
from tcnet.settings import Array, Choice, Integer, Real, Setting, Settings
from tcnet.loss import Evaluation
from tcnet.validate import array, real

from tcnet_plugins.ei import model as ei
from tcnet_plugins.ei import rules
from tcnet_plugins.ei.trials import PROTOCOLS, SETTINGS as TRIAL_SETTINGS, Trial, integrate


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

    def __init__(self, arrays, config=None, seed=None):
        config = dict(config or {})
        preset = ei.PRESETS.get(config.get("preset", "paradoxical"), {"params": {}})["params"]
        config.update({k: preset[k] for k in ei.PARAMETERS if config.get(k) is None and k in preset})
        super().__init__(arrays, config, seed)  # every parameter stored as a number: as the network ran

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


class LearningRule(Iterative):
    """A local plasticity rule dW(E, I, W) applied in QSS or in simulated trials (see module doc):
    the rule's state is the low-passed rates, the trial noise and the convergence streak; one
    step measures the rates (`evaluate`) and moves the weights (`step`)."""

    rule = ""
    SETTINGS = Iterative.SETTINGS.with_defaults(steps=5000) + Settings(
        Real("lr", 1e-3, "learning rate eta", low=0, low_open=True),
        Choice("mode", "qss", "'qss': the rates of the current weights' fixed point; 'trials': a simulated trial "
               "per step", options=("qss", "trials")),
        Real("rtol", 0.0, "> 0: converged once the rates are within rtol of the set points (0: never)", low=0),
        Integer("hold", 1, "steps the rates must stay within rtol to count as converged", low=1),
        Choice("protocol", None, "a preset of trial and learning settings (keys given override it)",
               options=(None, *PROTOCOLS)),
        Real("smoothing", 1.0, "low-pass of the rates across steps (1: each step's own rates)", low=0, high=1,
             low_open=True),
        Real("rate_floor", 0.0, "the rule sees max(rate_floor, rate)", low=0),
        Real("w_min", 0.0, "weights are floored at w_min after each step", low=0),
    ) + TRIAL_SETTINGS

    def __init__(self, **settings):
        """Settings: the declared defaults, overridden by the named `protocol`'s values,
        overridden by the keys given."""
        protocol = settings.get("protocol")
        preset = PROTOCOLS.get(protocol, {}) if isinstance(protocol, str) else {}
        super().__init__(**{**preset, **settings})

    def check(self):
        super().check()
        self.trial = Trial.from_settings(self.name, self.settings)

    def setup(self, objective):
        """The ei_rate dynamics and its parameters with the homeostatic term's set points."""
        dyn = objective.dynamics
        if not isinstance(dyn, EIRate):
            raise ConfigError(f"{self.name}: the learning rules need dynamics 'ei_rate', got {dyn.name!r}")
        losses = [t.loss for t in objective.terms if isinstance(t.loss, Homeostatic)]
        if not losses:
            raise ConfigError(f"{self.name}: the objective needs a 'homeostatic' loss term (the set points)")
        E_set, I_set = losses[0].set_points(dyn)
        self.dynamics, self.p = dyn, {**dyn.p, "E_set": E_set, "I_set": I_set}
        return objective

    def init(self, x0):
        return {"avg": [0.0, 0.0], "noise": [0.0, 0.0], "streak": -1}

    def evaluate(self, x, opt_state):
        """The loss at x (its gradient in QSS mode only: in trials mode no rule uses it, and
        autograd would cost more than the trial; NaN where the QSS runs away) with this step's
        measurement as the side result "learning": the rates (QSS, or trial number t), low-passed
        across steps, floored for the rule, their regime, and the convergence streak."""
        s, p, t = self.settings, self.p, opt_state["t"]
        E_q, I_q, regime = (float(v) for v in ei.steady_state(x, p))
        if s["mode"] == "qss" and regime != ei.RUNAWAY:
            ev = self.monitor.evaluate(self.objective, x)
        else:
            self.monitor.evaluations += 1
            state = self.dynamics.state(x)
            terms = {term.label: float(term.loss(state)) for term in self.objective.terms}
            ev = Evaluation(sum(term.weight * terms[term.label] for term in self.objective.terms), np.zeros(0), terms)
        noise = tuple(opt_state["noise"])
        if s["mode"] == "trials":
            rates, noise, _ = self.trial.run(x, self.dynamics.p, noise, t)
            regime = float(ei.region_of(*rates, x, p)) if np.all(np.isfinite(rates)) else ei.RUNAWAY
        else:
            rates = (E_q, I_q)
        avg = np.array(rates) if s["smoothing"] == 1 else np.array(opt_state["avg"]) + s["smoothing"] * (
            np.array(rates) - opt_state["avg"])
        E, I = (float(v) for v in np.maximum(avg, s["rate_floor"]))
        stable = bool(ei.stable_up(x, p))
        ok = s["rtol"] > 0 and bool(rules.within(E, I, p, s["rtol"])) and stable
        measured = {"E": E, "I": I, "E_trial": float(rates[0]), "I_trial": float(rates[1]), "E_qss": E_q,
                    "I_qss": I_q, "regime": regime, "up": float(ei.up_exists(x, p)), "stable": float(stable),
                    "paradoxical": float(ei.paradoxical_coefficient(x, p) > 0),
                    "avg": avg.tolist(), "noise": list(noise), "streak": int(rules.streak(opt_state["streak"], ok, t))}
        return replace(ev, aux={**ev.aux, "learning": measured})

    def columns(self, ev, opt_state):
        return {k: v for k, v in ev.aux["learning"].items() if k not in ("avg", "noise", "streak")}

    def stop(self, ev, opt_state):
        m, s, t = ev.aux["learning"], self.settings, opt_state["t"]
        if not (np.isfinite(m["E"]) and np.isfinite(m["I"])):
            if s["mode"] == "qss":
                return "no_progress", f"step {t}: no steady state (a kicked trial from rest runs away or keeps moving)"
            return "no_progress", f"step {t}: trial rates exceeded r_max = {s['r_max']} (runaway excitation)"
        if m["streak"] >= 0 and t - m["streak"] + 1 >= s["hold"]:
            return "converged", (f"rates within rtol = {s['rtol']} of the set points with a stable Up state from "
                                 f"step {m['streak']} for {s['hold']} step(s)")
        return None

    def update(self, ev, W, E, I):
        """dW for this step (subclasses with a non-local form override)."""
        return np.asarray(rules.rule_update(self.rule, E, I, W, self.p, self.settings["lr"]), dtype=float)

    def step(self, x, ev, opt_state):
        m = ev.aux["learning"]
        x_new = np.maximum(x + self.update(ev, x, m["E"], m["I"]), self.settings["w_min"])
        return x_new, {"avg": m["avg"], "noise": m["noise"], "streak": m["streak"]}


class Exact(LearningRule):
    """-eta dL/dW through the fixed point. In QSS mode it is the objective's gradient (autograd);
    in trials mode the implicit derivative of the Up state, which is linear in the rates, taken at
    the rates the rule sees: dW = eta S(E, I)^T (r_set - r), S = `model.sensitivities`."""

    name = rule = "exact"

    def update(self, ev, W, E, I):
        if self.settings["mode"] == "qss":
            return -self.settings["lr"] * ev.grad
        return super().update(ev, W, E, I)


class SmallWeight(LearningRule):
    """First-order expansion of dE/dW, dI/dW around W = 0 (E, I unexpanded)."""

    name = rule = "small_weight"


class UpState(LearningRule):
    """Zeroth-order expansion around the set-point weights (the seed's AA, BB, CC, DD form).
    `reference` = [W_EE, W_IE] fixes the expansion point; null (default) uses the current ones."""

    name = rule = "up_state"
    SETTINGS = LearningRule.SETTINGS + Settings(
        Setting("reference", None, "[W_EE, W_IE], the expansion point (null: the current weights)"))

    def check(self):
        super().check()
        ref = self.settings["reference"]
        if ref is not None:
            ref = array(self.name, "reference", ref, shape=(2,))
            self.settings["reference"] = [float(v) for v in ref]

    def update(self, ev, W, E, I):
        ref = self.settings["reference"]
        return np.asarray(rules.rule_update(self.rule, E, I, W, self.p, self.settings["lr"],
                                         None if ref is None else tuple(ref)), dtype=float)


class CrossHomeostatic(LearningRule):
    """dW_EE = eta E (I_set - I), dW_EI = -eta I (I_set - I), dW_IE = -eta E (E_set - E),
    dW_II = eta I (E_set - E) (Soldado-Magraner et al. 2022)."""

    name = rule = "cross_homeostatic"


class NaiveHomeostatic(LearningRule):
    """Each population's own error drives its input weights: dW_EE = eta E (E_set - E),
    dW_EI = -eta I (E_set - E), dW_IE = eta E (I_set - I), dW_II = -eta I (I_set - I)."""

    name = rule = "homeostatic"
