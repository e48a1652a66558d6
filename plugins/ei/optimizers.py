"""The five learning rules as optimizers: `exact`, `small_weight`, `up_state`, `cross_homeostatic`
and `homeostatic` (the naive rule), each a local plasticity rule dW(E, I, W) of
`tcnet_plugins.ei.rules` applied to an `ei_rate` dynamics with a `homeostatic` loss.

Each step takes the rates of the current weights, low-passes them across steps (avg <- avg +
smoothing (rate - avg), from 0; smoothing 1 uses each step's rates), shows the rule
max(rate_floor, avg), and sets W <- max(W + dW(E, I, W), w_min).
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
"""
from dataclasses import replace

import numpy as np

from tcnet import ConfigError, Iterative
from tcnet.loss import Evaluation
from tcnet.settings import Choice, Integer, Real, Setting, Settings
from tcnet.validate import array

from tcnet_plugins.ei import model as ei
from tcnet_plugins.ei import rules
from tcnet_plugins.ei.dynamics import EIRate
from tcnet_plugins.ei.losses import Homeostatic
from tcnet_plugins.ei.trials import PROTOCOLS, SETTINGS as TRIAL_SETTINGS, ProtocolRule


class LearningRule(ProtocolRule):
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
                    **{name: float(w) for name, w in zip(ei.WEIGHTS, x)},
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
