"""Loss terms and the weighted objective built from them.

A `Loss` is a named scalar function of a `State`. An `Objective` is sum_k w_k L_k(state(theta)):
its value, the value of every term and the gradient with respect to theta come from a single
autograd forward/backward pass, so terms that read the same cached quantity of the state (an
eigendecomposition, say) share one computation of it.
"""
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar, Sequence

import numpy as np
from autograd import value_and_grad
from autograd.tracer import getval

from tcnet.dynamics import Dynamics, State
from tcnet.validate import ConfigError, real


class Loss(ABC):
    """A scalar term of a state. `config` holds the keyword settings (JSON-serializable)."""

    name: ClassVar[str] = ""

    def __init__(self, **config):
        self.config = config

    @abstractmethod
    def __call__(self, state: State):
        """The term's value (an autograd-traceable real scalar)."""


@dataclass(frozen=True)
class Term:
    """One weighted loss in an objective; `label` names it in histories (default: the loss name)."""

    loss: Loss
    weight: float = 1.0
    label: str = ""

    def __post_init__(self):
        object.__setattr__(self, "label", self.label or self.loss.name)
        real(f"term {self.label!r}", "weight", self.weight)


@dataclass(frozen=True)
class Evaluation:
    """The objective at one point: total value, gradient and each term's unweighted value."""

    value: float
    grad: np.ndarray
    terms: dict

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


class Objective:
    """sum_k w_k L_k(state(theta)) for a dynamics and weighted terms."""

    def __init__(self, dynamics: Dynamics, terms: Sequence[Term]):
        labels = [t.label for t in terms]
        if not terms:
            raise ConfigError("objective: at least one loss term is required")
        dupes = sorted({x for x in labels if labels.count(x) > 1})
        if dupes:
            raise ConfigError(f"objective: term labels must be unique, repeated: {', '.join(dupes)}")
        self.dynamics = dynamics
        self.terms = tuple(terms)
        self._value_and_grad = value_and_grad(self._traced)
        self._last_terms: dict = {}

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(t.label for t in self.terms)

    def _traced(self, theta):
        state = self.dynamics.state(theta)
        total = 0.0
        for t in self.terms:
            v = t.loss(state)
            self._last_terms[t.label] = float(np.real(getval(v)))
            total = total + t.weight * v
        return total

    def __call__(self, theta):
        """The total value (traceable, so objectives can be composed inside other autograd code)."""
        return self._traced(theta)

    def evaluate(self, theta) -> Evaluation:
        """Value, gradient and per-term values in one pass; raises NonFiniteError if not finite."""
        self._last_terms = {}
        value, grad = self._value_and_grad(np.asarray(theta, dtype=float))
        ev = Evaluation(float(value), np.asarray(grad, dtype=float), dict(self._last_terms))
        if not ev.finite:
            raise NonFiniteError(ev)
        return ev

    def restrict(self, labels) -> "Objective":
        """The objective made of the named terms only (e.g. a constraint alone)."""
        unknown = sorted(set(labels) - set(self.labels))
        if unknown:
            raise ConfigError(
                f"objective: unknown term(s) {', '.join(unknown)}; terms are {', '.join(self.labels)}"
            )
        return Objective(self.dynamics, [t for t in self.terms if t.label in labels])
