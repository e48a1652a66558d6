"""`loss_rule`: the seed's prescription dW = -alpha dL/dW for any loss of the steady rates of any
`ei_circuit` (docs/EI_CIRCUITS.md derives it and says where it is a hand-derived rule).

The rates' derivatives come from the implicit steady-state equations F(r, W) = 0: for the
cotangent g = dL/dr, dL/dW = -F_W^T A^-T g with A = F_r (tcnet.steady.implicit), which is
the prescription's sum_k dL/dr_k dr_k/dW with dr/dW = -A^-1 F_W. Absent connections
(`connections` 0) stay 0; weights are floored at w_min after each step.

- mode "qss": the rates are the steady state of the current weights, followed from the last
  step's by Newton (re-decided by the circuit's protocol where Newton fails), and dL/dW is the
  objective's gradient (autograd through tcnet.steady's implicit VJP): any loss plugin of the
  state works;
- mode "trials": each step is the noisy Euler trial of `tcnet_plugins.ei.trials` (settings,
  `protocol` "soldado2022", low-pass `smoothing`, `rate_floor`) run by
  `tcnet_plugins.ei.circuit_trials`; the loss's dL/dr and the implicit derivative of the steady
  state's branch (the circuit linearized at its steady state: each transfer's slope there, so
  that dr/dW is linear in the rates, as the hand-derived rules') are taken at the rates the rule
  sees (for K = 2 in the Up state this is the `exact` rule's trials update).

Every step reports the rates the rule used (r_<population>), the steady rates (qss_<population>),
stable (the steady state) and the weights (W_<post>_<pre>) to the run history; rtol > 0 stops
once every rate is within rtol of the `set_points` loss's targets with a stable steady state
for `hold` steps.
"""
from dataclasses import replace

import autograd
import numpy as np

from tcnet import ConfigError, Iterative
from tcnet import steady as ss
from tcnet.loss import Evaluation
from tcnet.settings import Choice, Integer, Real, Settings

from tcnet_plugins.ei.circuit import CircuitState, EICircuit
from tcnet_plugins.ei.circuit_trials import run_trial
from tcnet_plugins.ei.losses import SetPoints
from tcnet_plugins.ei.trials import PROTOCOLS, SETTINGS as TRIAL_SETTINGS, ProtocolRule


class MeasuredState(CircuitState):
    """A circuit state whose rates are given (a trial's), for the loss's dL/dr at them."""

    def __init__(self, dynamics, params, rates):
        super().__init__(dynamics, params)
        self.__dict__["rates"] = rates


class LossRule(ProtocolRule):
    """dW = -lr dL/dW through the steady state of an `ei_circuit` (module docstring)."""

    name = "loss_rule"
    SETTINGS = Iterative.SETTINGS.with_defaults(steps=5000) + Settings(
        Real("lr", 1e-3, "learning rate alpha", low=0, low_open=True),
        Choice("mode", "qss", "'qss': the steady rates of the current weights; 'trials': a simulated trial per step",
               options=("qss", "trials")),
        Real("rtol", 0.0, "> 0: converged once every rate is within rtol of its set point (0: never)", low=0),
        Integer("hold", 1, "steps the rates must stay within rtol to count as converged", low=1),
        Choice("protocol", None, "a preset of trial and learning settings (keys given override it)",
               options=(None, *PROTOCOLS)),
        Real("smoothing", 1.0, "low-pass of the trial rates across steps (1: each step's own rates)", low=0, high=1,
             low_open=True),
        Real("rate_floor", 0.0, "the rule sees max(rate_floor, rate)", low=0),
        Real("w_min", 0.0, "existing weights are floored at w_min after each step", low=0),
    ) + TRIAL_SETTINGS

    def setup(self, objective):
        dyn = objective.dynamics
        if not isinstance(dyn, EICircuit):
            raise ConfigError(f"{self.name}: the rule needs dynamics 'ei_circuit', got {dyn.name!r}")
        targets = [t.loss.targets(dyn) for t in objective.terms if isinstance(t.loss, SetPoints)]
        self.dynamics, self.targets = dyn, (targets[0] if targets else dyn.set_points)
        self.names = dyn.config["populations"]
        return objective

    def init(self, x0):
        K = self.dynamics.K
        return {"avg": [0.0] * K, "noise": [0.0] * K, "streak": -1, "steady": None}

    def _loss_only(self, x):
        """The objective's value and terms at x without its gradient (counted)."""
        self.monitor.evaluations += 1
        state = self.dynamics.state(x)
        terms = {term.label: float(term.loss(state)) for term in self.objective.terms}
        return Evaluation(sum(term.weight * terms[term.label] for term in self.objective.terms), np.zeros(0), terms)

    def evaluate(self, x, opt_state):
        """The loss at x (with its gradient in QSS mode where a steady state is reached) and this
        step's measurement as the side result "learning"."""
        s, dyn, t = self.settings, self.dynamics, opt_state["t"]
        K = dyn.K
        steady = dyn.steady_rates(x.reshape(K, K), near=opt_state["steady"])
        reached = bool(np.all(np.isfinite(steady)))
        ev = self.monitor.evaluate(self.objective, x) if s["mode"] == "qss" and reached else self._loss_only(x)
        noise = list(opt_state["noise"])
        if s["mode"] == "trials":
            rates, noise = run_trial(self.trial, dyn, x.reshape(K, K), noise, t)
            noise = noise.tolist()
        else:
            rates = steady
        avg = np.array(rates) if s["smoothing"] == 1 else np.array(opt_state["avg"]) + s["smoothing"] * (
            np.array(rates) - opt_state["avg"])
        seen = np.maximum(avg, s["rate_floor"])
        stable = reached and ss.is_stable(dyn.field, (x.reshape(K, K),), steady)
        ok = bool(s["rtol"] > 0 and stable and np.all(np.abs(seen - self.targets) <= s["rtol"] * self.targets))
        streak = int(np.where(ok, np.where(opt_state["streak"] < 0, t, opt_state["streak"]), -1))
        measured = {"rates": seen.tolist(), "steady": steady.tolist() if reached else None, "stable": stable,
                    "avg": avg.tolist(), "noise": noise, "streak": streak}
        return replace(ev, aux={**ev.aux, "learning": measured})

    def columns(self, ev, opt_state):
        m, dyn = ev.aux["learning"], self.dynamics
        steady = m["steady"] or [np.nan] * dyn.K
        out = {f"r_{p}": float(r) for p, r in zip(self.names, m["rates"])}
        out.update({f"qss_{p}": float(r) for p, r in zip(self.names, steady)})
        out["stable"] = float(m["stable"])
        return out

    def stop(self, ev, opt_state):
        m, s, t = ev.aux["learning"], self.settings, opt_state["t"]
        if not np.all(np.isfinite(m["rates"])):
            if s["mode"] == "qss":
                return "no_progress", f"step {t}: no steady state (the circuit's protocol runs away or keeps moving)"
            return "no_progress", f"step {t}: trial rates exceeded r_max = {s['r_max']} (runaway)"
        if m["steady"] is None:  # trials: no branch to take the implicit derivative on
            return "no_progress", f"step {t}: no steady state (the circuit's protocol runs away or keeps moving)"
        if m["streak"] >= 0 and t - m["streak"] + 1 >= s["hold"]:
            return "converged", (f"rates within rtol = {s['rtol']} of the set points with a stable steady state from "
                                 f"step {m['streak']} for {s['hold']} step(s)")
        return None

    def gradient(self, x, ev, rates) -> np.ndarray:
        """dL/dW: the objective's gradient in QSS mode; in trials mode the implicit derivative of the
        linearized steady state at the rates the rule sees, with the loss's dL/dr there."""
        if self.settings["mode"] == "qss":
            return ev.grad
        dyn = self.dynamics
        params = dyn.params(x)
        rates = np.asarray(rates, dtype=float)

        def loss(r):
            state = MeasuredState(dyn, params, r)
            return sum(term.weight * term.loss(state) for term in self.objective.terms)

        W = params["W"]
        field = dyn.field.linearized(dyn.steady_rates(W), W)
        _, (gW,) = ss.implicit(field, (W,), rates, None, autograd.grad(loss)(rates))
        return np.ravel(gW)

    def step(self, x, ev, opt_state):
        m, s, mask = ev.aux["learning"], self.settings, self.dynamics.mask.ravel()
        x_new = x - s["lr"] * mask * self.gradient(x, ev, m["rates"])
        x_new = np.where(mask > 0, np.maximum(x_new, s["w_min"]), 0.0)
        return x_new, {"avg": m["avg"], "noise": m["noise"], "streak": m["streak"], "steady": m["steady"]}
