"""Loss terms and the weighted objective built from them.

A `Loss` is a named scalar function of a `State`. An `Objective` is sum_k w_k L_k(state(theta)):
its value, the value of every term and the gradient with respect to theta come from a single
autograd forward/backward pass, so terms that read the same cached quantity of the state (an
eigendecomposition, say) share one computation of it.

Side results are outputs, not side channels. A loss may return `(value, aux)`, aux a dict of
numbers or arrays it computed on the way (a constraint's signed residual, say); the evaluation
carries them, by term label, in `Evaluation.aux`. A loss may also take run-time inputs (a Lagrange
multiplier, a penalty weight): it names them in `inputs`, and `Objective.evaluate(theta, inputs)`
passes each term the ones it names. Nothing is written onto an object while autograd traces, so
one objective can be evaluated from several threads at once.
"""
from abc import ABC, abstractmethod
import json
from dataclasses import dataclass, field
from typing import ClassVar, Sequence

import numpy as np
from autograd.core import make_vjp
from autograd.extend import vspace
from autograd.tracer import Box, getval

from tcnet.dynamics import Dynamics, State
from tcnet.settings import Real, Settings, Text, warn_unchecked
from tcnet.validate import ConfigError


def weight_setting(signed: bool) -> Real:
    """A term's weight w_k in the objective sum_k w_k L_k: >= 0, any sign for a `signed` loss."""
    return Real("weight", 1.0, "the term's weight in the objective" + (" (any sign)" if signed else ""),
                low=None if signed else 0)


LABEL = Text("label", None, "the term's name in histories and study keys (null: the loss name)")


class Loss(ABC):
    """A scalar term of a state.

    A loss declares its settings once in `SETTINGS` (tcnet.settings); `Loss(**config)` checks
    them and keeps the values, defaults filled in, in `config`, which `__init__` of a subclass
    reads after calling ``super().__init__(**config)``. A loss that declares nothing and does not
    override `__init__` takes no settings. `inputs` names the run-time inputs `__call__` takes as
    keyword arguments; `signed` says whether a negative weight makes sense for it (a reward, a
    term to maximize); otherwise a negative weight is refused.
    """

    name: ClassVar[str] = ""
    inputs: ClassVar[tuple[str, ...]] = ()
    signed: ClassVar[bool] = False
    SETTINGS: ClassVar[Settings] = Settings()

    def __init__(self, **config):
        cls = type(self)
        if cls.declares_settings():
            self.config = cls.SETTINGS.resolve(cls.name, config)
        else:
            warn_unchecked("loss", cls.name, config)
            self.config = config

    @classmethod
    def declares_settings(cls) -> bool:
        """False for a loss that takes its configuration its own way (an `__init__` of its own
        without SETTINGS): its keys are passed on unchecked."""
        return cls.SETTINGS is not Loss.SETTINGS or cls.__init__ is Loss.__init__

    @classmethod
    def term_settings(cls) -> Settings:
        """Every key of a loss term in a run spec: weight and label, then the loss's own."""
        return Settings(weight_setting(cls.signed), LABEL) + cls.SETTINGS

    @abstractmethod
    def __call__(self, state: State, **inputs):
        """The term's value (an autograd-traceable real scalar), or (value, aux) with aux a dict
        of side results (numbers or arrays; they are not differentiated)."""


@dataclass(frozen=True)
class Term:
    """One weighted loss in an objective; `label` names it in histories (default: the loss name)."""

    loss: Loss
    weight: float = 1.0
    label: str = ""

    def __post_init__(self):
        object.__setattr__(self, "label", self.label or self.loss.name)
        weight_setting(self.loss.signed).validate(f"{self.loss.name} (term {self.label!r})", self.weight)


@dataclass(frozen=True)
class Evaluation:
    """The objective at one point: total value, gradient, each term's unweighted value, by
    term label the side results of the terms that return them, and the state's `columns` (how it
    computed them; the monitor records them in the history)."""

    value: float
    grad: np.ndarray
    terms: dict
    aux: dict = field(default_factory=dict)
    columns: dict = field(default_factory=dict)

    @property
    def grad_norm(self) -> float:
        """|grad|; NaN for a gradient-free evaluation (an empty grad), e.g. an EM iterate."""
        return float(np.linalg.norm(self.grad)) if self.grad.size else float("nan")

    @property
    def finite(self) -> bool:
        return bool(np.isfinite(self.value) and np.all(np.isfinite(self.grad)))


class NonFiniteError(ArithmeticError):
    """The objective or its gradient is not finite at a point; optimizers stop on it."""

    def __init__(self, evaluation: Evaluation):
        bad = [k for k, v in evaluation.terms.items() if not np.isfinite(v)]
        where = f"term(s) {', '.join(bad)}" if bad else "the gradient"
        super().__init__(f"non-finite loss or gradient ({where} not finite)")
        self.evaluation = evaluation


AUTOGRAD_HINT = ("autograd traced a parameter into code it cannot differentiate: use autograd.numpy (not numpy) "
                 "on anything that depends on the parameters, and no in-place assignment to such arrays "
                 "(docs/PLUGINS.md)")


class LossError(Exception):
    """An exception inside a loss term, named: the loss, its term label and settings, and (set by the
    optimizer's monitor, `at_step`) the step at which it was evaluated. The original is its __cause__."""

    def __init__(self, term: "Term", error: BaseException, step: int | None = None, backward: bool = False,
                 traced: bool = False):
        """`traced`: the error came from autograd's tracing only (the loss computes untraced)."""
        self.term, self.error, self.step, self.backward, self.traced = term, error, step, backward, traced
        settings = json.dumps(term.loss.config, sort_keys=True, default=str)
        where = f" at step {step}" if step is not None else ""
        phase = "its gradient" if backward else "it"
        text = " ".join(str(error).split())
        autograd = "ArrayBox" in text or "VJP of" in text or traced
        hint = f" ({AUTOGRAD_HINT})" if autograd else ""
        super().__init__(f"loss {term.loss.name!r} (term {term.label!r}, weight {term.weight:g}, settings {settings}): "
                         f"{phase} raised{where}: {type(error).__name__}: {text}{hint}")

    def at_step(self, step: int) -> "LossError":
        """The same error naming the step (the monitor knows it, the objective does not)."""
        named = LossError(self.term, self.error, step, self.backward, self.traced)
        named.__cause__ = self.error
        return named


class Objective:
    """sum_k w_k L_k(state(theta)) for a dynamics and weighted terms."""

    def __init__(self, dynamics: Dynamics, terms: Sequence[Term]):
        self.check_labels([t.label for t in terms])
        self.dynamics = dynamics
        self.terms = tuple(terms)

    @staticmethod
    def check_labels(labels) -> None:
        """At least one term, and no label twice (a label names a term's history column)."""
        if not labels:
            raise ConfigError("objective: at least one loss term is required")
        dupes = sorted({x for x in labels if labels.count(x) > 1})
        if dupes:
            raise ConfigError(f"objective: term labels must be unique, repeated: {', '.join(dupes)}")

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(t.label for t in self.terms)

    @property
    def inputs(self) -> tuple[str, ...]:
        """The run-time inputs its terms take (the keys `evaluate`'s `inputs` must hold)."""
        return tuple(dict.fromkeys(k for t in self.terms for k in t.loss.inputs))

    def _split(self, theta, inputs):
        """(total, (term values, aux by label, the state's columns)): the total is traced, the rest
        are plain values."""
        state = self.dynamics.state(theta)
        total, values, aux = 0.0, {}, {}
        for t in self.terms:
            try:
                out = t.loss(state, **{k: inputs[k] for k in t.loss.inputs})
            except ConfigError:  # a loss's own one-line refusal already names it
                raise
            except Exception as err:
                raise LossError(t, err, traced=self._fails_traced_only(t, theta, inputs)) from err
            v, side = out if isinstance(out, tuple) else (out, None)
            values[t.label] = float(np.real(getval(v)))
            if side is not None:
                aux[t.label] = {k: np.asarray(getval(a)) for k, a in side.items()}
            total = total + t.weight * v
        return total, (values, aux, state.columns())

    def _fails_traced_only(self, term, theta, inputs) -> bool:
        """Whether `term` raised only because autograd traced it: at the same point untraced it
        computes (numpy met a Box: the common autograd mistake, which the error then explains)."""
        if not isinstance(theta, Box):
            return False
        try:
            term.loss(self.dynamics.state(getval(theta)), **{k: inputs[k] for k in term.loss.inputs})
        except Exception:
            return False
        return True

    def _inputs(self, inputs) -> dict:
        inputs = dict(inputs or {})
        missing = [k for k in self.inputs if k not in inputs]
        if missing:
            raise ConfigError(f"objective: input(s) {', '.join(missing)} required by its terms are missing")
        return inputs

    def __call__(self, theta, inputs: dict | None = None):
        """The total value (traceable, so objectives can be composed inside other autograd code)."""
        return self._split(theta, self._inputs(inputs))[0]

    def evaluate(self, theta, inputs: dict | None = None, gradient: bool = True) -> Evaluation:
        """Value, gradient (empty with gradient=False), per-term values and side results in one
        pass, with the run-time `inputs` its terms name; raises NonFiniteError if not finite."""
        theta, inputs = np.asarray(theta, dtype=float), self._inputs(inputs)
        if not gradient:
            value, (values, aux, columns) = self._split(theta, inputs)
            ev = Evaluation(float(np.real(value)), np.zeros(0), values, aux, columns)
        else:
            # The side results are plain values (_split unboxes them), so only the total is traced;
            # they come out through a list local to this call, which keeps concurrent evaluations
            # apart. (Tracing them as a second output, autograd's grad_and_aux, costs a zero
            # cotangent of every term and aux entry: about 10 % of a small objective's evaluation.)
            side = []

            def total(th):
                value, out = self._split(th, inputs)
                side.append(out)
                return value

            vjp, value = make_vjp(total, theta)
            (values, aux, columns), = side
            try:
                grad = vjp(vspace(value).ones())
            except Exception as err:
                raise self._backward_error(theta, inputs, err) from err
            ev = Evaluation(float(value), np.asarray(grad, dtype=float), values, aux, columns)
        if not ev.finite:
            raise NonFiniteError(ev)
        return ev

    def _backward_error(self, theta, inputs, err) -> Exception:
        """The error of a failed backward pass, naming the term whose gradient fails (each term's is
        taken alone to find it); the error itself where none does alone."""
        if len(self.terms) > 1:
            for t in self.terms:
                try:
                    make_vjp(lambda th: Objective(self.dynamics, [t])._split(th, inputs)[0], theta)[0](1.0)
                except Exception as alone:
                    return LossError(t, alone, backward=True)
            return err
        return LossError(self.terms[0], err, backward=True)

    def restrict(self, labels) -> "Objective":
        """The objective made of the named terms only (e.g. a constraint alone)."""
        unknown = sorted(set(labels) - set(self.labels))
        if unknown:
            raise ConfigError(
                f"objective: unknown term(s) {', '.join(unknown)}; terms are {', '.join(self.labels)}"
            )
        return Objective(self.dynamics, [t for t in self.terms if t.label in labels])
