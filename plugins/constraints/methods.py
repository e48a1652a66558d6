"""Constraint methods: minimize an objective f(theta) while an equality constraint g(theta) = 0
holds, for any dynamics and any objective, as optimizer plugins `alternating`, `lagrangian`,
`penalty`.

Which term is the constraint. A run's objective is a list of labelled terms; the optimizer setting
`constraint` names one of them by label. That term is the constraint; the other terms, with their
weights, are the objective proper f. The constraint term's own weight is not used: each method
decides how the constraint enters (a second optimizer, a multiplier, a growing penalty weight).

How a constraint is represented. The Lagrangian L = f + lambda . g (+ rho/2 |g|^2) needs the
*signed* residual g, not only a squared loss: g^2 has zero gradient on the constraint surface, so a
multiplier on it cannot balance grad f there. A constraint is therefore an `Equality` loss with a
method `residual(state)` returning g (any shape, autograd-traceable), while the loss *value* is the
squared violation |g|^2 = sum g^2. This keeps one object usable everywhere: as an ordinary loss term
(the slides' `(x2 - 3)^2`, or a fixed penalty under plain `sgd`), as the second loss of the
alternating scheme, and with its residual in the Lagrangian. A plugin gets a constraint either by
subclassing `Equality`, or without writing code through the generic loss `equality`, which makes
g = quantity[index] - target from any quantity its dynamics' state exposes as an attribute.
`alternating` and `penalty` accept any loss as the constraint (its value is then the violation
measure); `lagrangian` requires an `Equality`.

Per-step records (run history extras): `objective` (f), `violation` (|g|_2 for an `Equality`, else
the constraint loss value), and the multiplier: `lagrangian` records lambda, `penalty` the
multiplier estimate 2 mu g (the lambda at which the Lagrangian's gradient equals the penalized
gradient), `alternating` has none. A multiplier with several components is recorded as its norm
(`multiplier_norm`); the full vector is in the resumable state.
"""
import math
import re
from abc import abstractmethod

import autograd.numpy as anp
import numpy as np
from autograd.tracer import getval

from tcnet import ConfigError, Iterative, Loss, Objective, State, Term
from tcnet.optim import STABILITY_CHECK, check_step, largest_curvature
from tcnet.settings import REQUIRED, Array, Integer, Real, Setting, Settings, Text
from tcnet.validate import real


class Equality(Loss):
    """An equality constraint g(state) = 0: `residual` is the signed g, the loss value |g|^2."""

    @abstractmethod
    def residual(self, state):
        """The signed residual g (any shape; zero where the constraint holds)."""

    def __call__(self, state):
        g = self.residual(state)
        return anp.sum(g * g)


class StateEquality(Equality):
    """g = ravel(state.<quantity>)[index] - target, for any dynamics whose state exposes `quantity`
    (an attribute or cached property). `index`: None (all entries), an integer or a list of
    integers into the flattened quantity; `target`: a number or a list as long as the selection."""

    name = "equality"
    SETTINGS = Settings(
        Text("quantity", REQUIRED, "the name of a quantity of the dynamics' state"),
        Array("target", 0.0, "the value: a number, or a list as long as the selection"),
        Array("index", None, "entries of the flattened quantity: an integer or a non-empty list (null: all)",
              integer=True),
    )

    def __init__(self, **config):
        super().__init__(**config)
        self.quantity, self.index = self.config["quantity"], self.config["index"]
        self.target = np.asarray(self.config["target"], dtype=float)
        if self.target.ndim > 1:
            raise ConfigError(f"equality: target must be a number or a list of numbers, got {self.config['target']!r}")
        if self.index is not None and np.ndim(self.index) > 1 or self.index == []:
            raise ConfigError(f"equality: index must be an integer or a non-empty list of integers, got {self.index!r}")

    def residual(self, state):
        try:
            q = getattr(state, self.quantity)
        except AttributeError:
            known = sorted(n for n in dir(type(state)) if not n.startswith("_") and n not in ("dynamics", "params")
                           and not hasattr(State, n))  # the quantities of this state, not the base's methods
            raise ConfigError(f"equality: quantity {self.quantity!r} is not a quantity of the "
                              f"{state.dynamics.name} state; available: {', '.join(known) or 'none'}") from None
        q = anp.ravel(q)
        if self.index is not None:
            n = getval(q).shape[0]
            idx = np.atleast_1d(self.index)
            if np.any(idx >= n) or np.any(idx < -n):
                raise ConfigError(f"equality: index {self.index!r} is out of range for {self.quantity} "
                                  f"with {n} entries")
            q = q[idx]
        if self.target.ndim == 1 and self.target.shape != getval(q).shape:
            raise ConfigError(f"equality: target has {self.target.size} entries but the selection of "
                              f"{self.quantity} has {getval(q).size}")
        return q - self.target


class _Coupling(Loss):
    """The constraint's part of a Lagrangian, multiplier . g + rho/2 |g|^2, with the multiplier and
    rho run-time inputs of the evaluation, and g returned as the side result `residual` (so the
    optimizer reads g from the same autograd pass that gives the gradient). A constraint that is
    not an `Equality` enters as rho/2 * its loss value (the multiplier must then be 0)."""

    name = "coupling"
    inputs = ("multiplier", "rho")
    SETTINGS = Settings()  # built by the Lagrangian around its constraint, not from a spec

    def __init__(self, constraint: Loss):
        super().__init__()
        self.constraint = constraint

    def __call__(self, state, multiplier, rho):
        if not isinstance(self.constraint, Equality):
            return 0.5 * rho * self.constraint(state)
        g = self.constraint.residual(state)
        return anp.sum(multiplier * g) + 0.5 * rho * anp.sum(g * g), {"residual": g}


_ENTRY = re.compile(r"^\s*([A-Za-z_]\w*)\s*(?:\[([^\]]*)\])?\s*$")
_INT = r"\s*-?\d+\s*"


def _parse_subset_entry(owner, entry):
    """'J' -> ('J', all); 'x[1]', 'x[:, 1]', 'x[0:2]' -> (name, numpy index tuple)."""
    m = _ENTRY.match(entry) if isinstance(entry, str) else None
    if m is None:
        raise ConfigError(f"{owner}: subset entries must be parameter names with an optional index such as "
                          f"'x' or 'x[:, 1]', got {entry!r}")
    name, inside = m.group(1), m.group(2)
    if inside is None:
        return name, (Ellipsis,)
    index = []
    for part in inside.split(","):
        if re.fullmatch(_INT, part):
            index.append(int(part))
        elif re.fullmatch(rf"(?:{_INT})?:(?:{_INT})?(?::(?:{_INT})?)?|\s*:\s*", part):
            bounds = [int(b) if b.strip() else None for b in part.split(":")]
            index.append(slice(*bounds))
        else:
            raise ConfigError(f"{owner}: subset entry {entry!r}: index part {part.strip()!r} must be an "
                              "integer or a slice like 0:2")
    return name, tuple(index)


def subset_mask(owner, dynamics, subset) -> np.ndarray:
    """Boolean mask over the flat parameter vector selecting the subset entries (None: all)."""
    if subset is None:
        return np.ones(dynamics.size, dtype=bool)
    masks = {k: np.zeros(dynamics.arrays[k].shape, dtype=bool) for k in dynamics.trainable}
    for entry in subset:
        name, index = _parse_subset_entry(owner, entry)
        if name not in masks:
            raise ConfigError(f"{owner}: subset entry {entry!r} names no trainable parameter of "
                              f"{dynamics.name}; trainable: {', '.join(dynamics.trainable)}")
        try:
            masks[name][index] = True
        except IndexError:
            raise ConfigError(f"{owner}: subset entry {entry!r} is out of range for {name} of shape "
                              f"{masks[name].shape}") from None
    mask = np.concatenate([masks[k].ravel() for k in dynamics.trainable])
    if not mask.any():
        raise ConfigError(f"{owner}: subset {subset!r} selects no parameter")
    return mask


def _multiplier_record(values) -> dict:
    v = np.asarray(values, dtype=float)
    return {"multiplier": float(v.ravel()[0])} if v.size == 1 else {"multiplier_norm": float(np.linalg.norm(v))}


class ConstraintMethod(Iterative):
    """Common settings and the split of the objective into f and the constraint term.

    `steps`: maximum number of updates; `lr`: gradient-descent step on the parameters; `tol`:
    stopping tolerance (its meaning is given per method; 0 runs all steps)."""

    SETTINGS = Settings(
        Text("constraint", REQUIRED, "the label of the objective's constraint term"),
        *Iterative.SETTINGS.with_defaults(steps=1000),
        Real("lr", 0.01, "gradient-descent step on the parameters", low=0, low_open=True),
        Real("tol", 0.0, "stopping tolerance (per method; 0 runs every step)", low=0),
    )

    def split(self, objective: Objective) -> tuple[list, Loss]:
        """The terms of f and the constraint's loss."""
        label = self.settings["constraint"]
        if label not in objective.labels:
            raise ConfigError(f"{self.name}: constraint {label!r} is not a term of the objective; terms are "
                              f"{', '.join(objective.labels)}")
        others = [t for t in objective.labels if t != label]
        if not others:
            raise ConfigError(f"{self.name}: the objective needs at least one term besides the constraint {label!r}")
        return list(objective.restrict(others).terms), objective.restrict([label]).terms[0].loss

    def coupled(self, objective: Objective, suffix: str) -> Objective:
        """f, the constraint term recorded with weight 0, and the coupling term '<label>_<suffix>'
        (kept on self as `loss`, `label` and `coupling` for the other methods of the rule)."""
        rest, self.loss = self.split(objective)
        self.label, self.coupling = self.settings["constraint"], f"{self.settings['constraint']}_{suffix}"
        return Objective(objective.dynamics, [*rest, Term(self.loss, 0.0, self.label),
                                              Term(_Coupling(self.loss), 1.0, self.coupling)])

    def violation(self, constraint: Loss, value: float) -> float:
        return math.sqrt(max(value, 0.0)) if isinstance(constraint, Equality) else value

    def step(self, x, ev, opt_state):
        return x - self.settings["lr"] * ev.grad, {}


class Alternating(ConstraintMethod):
    """Two losses, two optimizers (the slides' scheme). Each iteration:

        y      = x - lr grad f(x)                      (all parameters, on the objective)
        x_new  = y - constraint_lr * P grad c(y)       (P: the `subset` entries only, on the constraint loss c)

    with c the constraint term's loss value (|g|^2 for an `Equality`). `subset`: list of trainable
    parameter names with an optional numpy-style index ('x', 'x[:, 1]', 'J[0:3]'), None for all.
    Stops after `steps` iterations, or once |x_new - x| <= tol (the state keeps it as `moved`).

    The scheme does not converge to the constrained optimum: its fixed points solve
    lr P^c grad f(x) = 0 and lr P grad f(x) + constraint_lr P grad c(y) = 0, i.e. the constraint step
    only cancels the objective's pull, leaving a bias g != 0 of order lr/constraint_lr (derived in
    closed form for the toy in `tcnet_plugins.constraints.toy_gaussian.alternating_fixed_point`).
    """

    name = "alternating"
    SETTINGS = ConstraintMethod.SETTINGS + Settings(
        Real("constraint_lr", 0.2, "gradient-descent step on the constraint loss", low=0, low_open=True),
        Setting("subset", None, "trainable entries the constraint step moves, e.g. ['x[:, 1]'] (None: all)"),
    )

    def check(self):
        subset = self.settings["subset"]
        if subset is not None:
            if not isinstance(subset, (list, tuple)) or not subset:
                raise ConfigError(f"{self.name}: subset must be a non-empty list of parameter entries "
                                  f"such as ['x[:, 1]'], or None for all parameters, got {subset!r}")
            for entry in subset:
                _parse_subset_entry(self.name, entry)

    def setup(self, objective):
        rest, self.loss = self.split(objective)
        self.label = self.settings["constraint"]
        self.constraint = Objective(objective.dynamics, [Term(self.loss, 1.0, self.label)])
        self.mask = subset_mask(self.name, objective.dynamics, self.settings["subset"])
        return Objective(objective.dynamics, [*rest, Term(self.loss, 0.0, self.label)])  # f, and c recorded

    def columns(self, ev, opt_state):
        return {"objective": ev.value, "violation": self.violation(self.loss, ev.terms[self.label])}

    def stop(self, ev, opt_state):
        moved = opt_state.get("moved", math.inf)
        return ("converged", f"|step| = {moved:.3g} <= tol") if moved <= self.settings["tol"] else None

    def step(self, x, ev, opt_state):
        y = x - self.settings["lr"] * ev.grad
        pull = self.monitor.evaluate(self.constraint, y).grad
        x_new = y - self.settings["constraint_lr"] * np.where(self.mask, pull, 0.0)
        return x_new, {"moved": float(np.linalg.norm(x_new - x))}


class Lagrangian(ConstraintMethod):
    """Basic differential multiplier method (Platt & Barr 1988), optionally augmented:

        L(x, lambda) = f(x) + lambda . g(x) + rho/2 |g(x)|^2
        x      <- x - lr grad_x L(x, lambda)
        lambda <- lambda + multiplier_lr g(x)          (gradient ascent on the multiplier)

    simultaneously, from lambda = `multiplier`. A point with grad_x L = 0 and g = 0 is a fixed point,
    so where the iteration converges it converges to a constrained stationary point itself (no
    bias), with lambda its Lagrange multiplier. rho = 0 (the default) is the basic method; it is only
    locally stable where the Lagrangian is convex enough along the constraint normal, and rho > 0
    adds that curvature (for the slides' toy at lr = multiplier_lr = 0.05 the optimum is unstable
    for rho < 0.2526, and for rho < 0.2071 in the small-step limit: `lagrangian_discrete_critical_rho`
    and `lagrangian_critical_rho` in `tcnet_plugins.constraints.toy_gaussian`). Stops after `steps` updates,
    or once |grad_x L| <= tol and |g| <= tol. The constraint term must be an `Equality`. Resuming is
    exact (the state holds lambda).
    """

    name = "lagrangian"
    SETTINGS = ConstraintMethod.SETTINGS.with_defaults(lr=0.05) + Settings(
        Real("multiplier_lr", 0.05, "gradient-ascent step on the multiplier", low=0, low_open=True),
        Real("rho", 0.0, "augmentation rho/2 |g|^2 (0: the basic method)", low=0),
        Real("multiplier", 0.0, "the multiplier's starting value"),
    )

    def setup(self, objective):
        lagrangian = self.coupled(objective, "coupling")
        if not isinstance(self.loss, Equality):
            raise ConfigError(f"{self.name}: the constraint term {self.label!r} (loss {self.loss.name!r}) has no "
                              "signed residual; use an Equality loss, e.g. the generic 'equality' loss")
        return lagrangian

    def init(self, x0):
        return {"multiplier": np.array(self.settings["multiplier"], dtype=float)}

    def evaluate(self, x, opt_state):
        inputs = {"multiplier": opt_state["multiplier"], "rho": self.settings["rho"]}
        return self.monitor.evaluate(self.objective, x, inputs)

    def residual(self, ev, opt_state):
        """g at the evaluated point, and lambda broadcast to its shape."""
        g = ev.aux[self.coupling]["residual"]
        return g, np.broadcast_to(opt_state["multiplier"], g.shape).copy()

    def columns(self, ev, opt_state):
        g, lam = self.residual(ev, opt_state)
        return {"objective": ev.value - ev.terms[self.coupling], "violation": float(np.linalg.norm(g)),
                **_multiplier_record(lam)}

    def stop(self, ev, opt_state):
        violation, tol = float(np.linalg.norm(self.residual(ev, opt_state)[0])), self.settings["tol"]
        if ev.grad_norm <= tol and violation <= tol:
            return "converged", f"|grad L| = {ev.grad_norm:.3g}, |g| = {violation:.3g} <= tol"
        return None

    def step(self, x, ev, opt_state):
        g, lam = self.residual(ev, opt_state)
        return x - self.settings["lr"] * ev.grad, {"multiplier": lam + self.settings["multiplier_lr"] * g}


class Penalty(ConstraintMethod):
    """Quadratic penalty with a growing weight: gradient descent on f + mu_t c, where c is the
    constraint loss (|g|^2 for an `Equality`) and mu_t = min(mu * mu_factor^(t // mu_every), mu_max).

    The minimizer of f + mu c violates the constraint by g ~ +lambda*/(2 mu), lambda* the Lagrange
    multiplier of L = f + lambda g (lambda* = -df/dx_i for the constraint x_i = t; the multiplier
    estimate 2 mu g recorded below agrees), so the penalty leaves a bias that shrinks only as mu_max
    grows; plain gradient descent is stable only while lr * (curvature of f + mu c) < 2, which bounds
    the usable mu_max. Stops after `steps` updates, or once mu = mu_max and the penalized gradient
    is <= tol.
    """

    name = "penalty"
    SETTINGS = ConstraintMethod.SETTINGS.with_defaults(steps=3000) + Settings(
        Real("mu", 1.0, "the penalty weight at the start", low=0, low_open=True),
        Real("mu_factor", 2.0, "factor by which mu grows", low=1),
        Integer("mu_every", 100, "updates between two growths of mu", low=1),
        Real("mu_max", 10.0, "largest mu (at least mu)", low=0, low_open=True),
        STABILITY_CHECK,
    )

    def check(self):
        real(self.name, "mu_max", self.settings["mu_max"], low=self.settings["mu"])

    def mu(self, t: int) -> float:
        s = self.settings
        return float(min(s["mu"] * s["mu_factor"] ** (t // s["mu_every"]), s["mu_max"]))

    def setup(self, objective):
        return self.coupled(objective, "penalty")

    def init(self, x0):
        """Warns if lr is beyond the stability bound lr * (curvature of f + mu_max c) < 2 of gradient
        descent on the penalized loss, with its largest curvature taken at x0 (tcnet.optim)."""
        s = self.settings
        if s["stability_check"]:
            curvature = largest_curvature(self.objective, x0, {"multiplier": 0.0, "rho": 2 * s["mu_max"]},
                                          iterations=s["stability_check"])
            check_step(self.name, s["lr"], curvature, 2.0,
                       f"largest curvature of f + mu_max c at the start, mu_max = {s['mu_max']:g}")
        return {}

    def evaluate(self, x, opt_state):  # rho/2 |g|^2 = mu c
        return self.monitor.evaluate(self.objective, x, {"multiplier": 0.0, "rho": 2 * self.mu(opt_state["t"])})

    def columns(self, ev, opt_state):
        mu = self.mu(opt_state["t"])
        out = {"objective": ev.value - ev.terms[self.coupling],
               "violation": self.violation(self.loss, ev.terms[self.label]), "mu": mu}
        if isinstance(self.loss, Equality):
            out.update(_multiplier_record(2 * mu * ev.aux[self.coupling]["residual"]))
        return out

    def stop(self, ev, opt_state):
        if self.mu(opt_state["t"]) >= self.settings["mu_max"] and ev.grad_norm <= self.settings["tol"]:
            return "converged", f"mu = mu_max and |grad| = {ev.grad_norm:.3g} <= tol"
        return None
