"""Optimizers: the base class, the monitor every optimizer reports to, and the generic built-ins.

An optimizer minimizes an `Objective` over the flat parameter vector. Whatever its algorithm, it
reports every accepted iterate to a `Monitor` (step number, stage, evaluations so far, loss,
per-term values, gradient norm, wall time, and `opt_state`, the optimizer's own resumable
snapshot: Adam's moments, a multiplier, a step counter), which forwards it to a callback (the run
history, a progress bar). Step 0 is the starting point; step k is the point after k updates. A
`Checkpoint` is where a run resumes: a reported step's point, clock, stage, count and opt_state.

"opt_state" is optax's name for the same thing; it is not the dynamics' `State` (the quantities
losses read at one parameter setting).

Built-ins: `sgd`, `adam` (the Keras form used by the published preparatory-network code),
`lbfgs` (scipy's L-BFGS-B) and `staged` (stages run one after another, e.g. Adam then L-BFGS;
the old name `chain` is still accepted in specs).
"""
import copy
import time
import warnings
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Callable, ClassVar

import numpy as np
import scipy.optimize

from tcnet.loss import Evaluation, LossError, NonFiniteError, Objective
from tcnet.plugins import hookimpl
from tcnet.settings import Integer, Real, Setting, Settings
from tcnet.status import Status
from tcnet.validate import ConfigError, no_extra


@dataclass(frozen=True)
class Step:
    """One reported iterate. `stage` is the index of the stage that reported it (0 unless staged),
    `evaluations` the objective evaluations so far (every session of a resumed run), `opt_state`
    the optimizer's snapshot for resuming at this point, `extra` optimizer-specific scalars for
    the history (e.g. a Lagrange multiplier) and the state's columns (`State.columns`)."""

    step: int
    stage: int
    evaluations: int
    loss: float
    terms: dict
    grad_norm: float
    wall_time: float
    x: np.ndarray
    opt_state: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Checkpoint:
    """Where to resume a run: the last recorded step number, its point, the optimizer's snapshot,
    the clock, the stage and the evaluation count (all of which a resumed run continues)."""

    step: int
    x: np.ndarray
    opt_state: dict
    elapsed: float
    stage: int = 0
    evaluations: int = 0

    @classmethod
    def at(cls, step: Step) -> "Checkpoint":
        """The checkpoint of a reported step."""
        return cls(step.step, step.x, step.opt_state, step.wall_time, step.stage, step.evaluations)


@dataclass(frozen=True)
class Result:
    """How a minimization ended: final point, status and counts.

    status is one of the words of `tcnet.status.Status`: "converged", "max_steps", "stopped" (the
    callback asked), "no_progress" (the algorithm could not decrease the loss further, e.g. a failed
    line search), "non-finite" (the guard stopped it; x is the last finite iterate) and "diverged"
    (an iterate left the bounds of `Monitor.check_bounds`; x is the last iterate within them).
    """

    x: np.ndarray
    status: str
    message: str
    steps: int
    evaluations: int


GROWTH_BOUND = 1e10
"""How far a run may grow: a reported iterate whose largest parameter (or loss) exceeds this many
times the largest parameter (or loss) of the session's starting point (at least 1) has diverged."""
FINITE_BOUND = 1e154
"""Beyond sqrt(largest float64) ~ 1.3e154 squares overflow (norms, quadratic losses, Gram
matrices): an iterate with a parameter or loss this large has diverged whatever its start."""


class Diverged(ArithmeticError):
    """A reported iterate left the bounds of `Monitor.check_bounds`; optimizers stop on it."""


class Monitor:
    """Numbers steps across stages, counts evaluations, keeps the clock, and passes each step to
    `callback`; `callback(step) -> bool | None` returning True asks the optimizer to stop. Every
    point it evaluates and every iterate it records is first held to the divergence bounds
    (`check_bounds`)."""

    def __init__(self, callback: Callable[[Step], bool | None] | None = None):
        self.callback = callback
        self.next_step = 0
        self.stage = 0
        self.evaluations = 0
        self.last: Step | None = None
        self._latest: tuple | None = None  # (objective, x bytes, gradient, Evaluation) of the latest evaluate
        self.start: dict[str, float] = {}  # the session's first largest |parameter| and |loss|, at least 1
        self._t0 = time.perf_counter()

    def resume(self, checkpoint: Checkpoint) -> None:
        """Continue the numbering, clock, stage and evaluation count of an interrupted run."""
        self.next_step = checkpoint.step + 1
        self.stage = checkpoint.stage
        self.evaluations = checkpoint.evaluations
        self._t0 = time.perf_counter() - checkpoint.elapsed

    def evaluate(self, objective: Objective, x, inputs: dict | None = None, gradient: bool = True) -> Evaluation:
        """objective.evaluate(x, inputs, gradient), counted; a point beyond the bounds is not
        evaluated (Diverged, see `check_bounds`). Asked again for the point it evaluated last (same
        objective, no inputs, the gradient as before or not wanted), it returns that evaluation
        uncounted: a stage starts where the previous one evaluated last (Adam's last iterate, then
        L-BFGS's start), and L-BFGS reports the point its line search ended on."""
        x = np.asarray(x, dtype=float)
        latest = self._latest
        if (inputs is None and latest is not None and latest[0] is objective and latest[1] == x.tobytes()
                and (latest[2] or not gradient)):
            return latest[3]
        self.check_bounds("largest |parameter|", _largest(x))
        self.evaluations += 1
        try:
            ev = objective.evaluate(x, inputs, gradient)
        except LossError as err:
            raise err.at_step(self.next_step) from err.error
        self._latest = (objective, x.tobytes(), gradient, ev) if inputs is None else None
        return ev

    def evaluation_at(self, x) -> Evaluation | None:
        """The latest evaluation, if it was made at x without inputs (the point a run ended on,
        whose evaluation `tcnet.run` returns); None otherwise."""
        latest = self._latest
        return latest[3] if latest is not None and latest[1] == np.asarray(x, dtype=float).tobytes() else None

    def report(self, x, ev: Evaluation, *, opt_state=None, extra=None, initial=False) -> bool:
        """Record an iterate, with the optimizer's `extra` scalars and the state's columns
        (`ev.columns`) as extra history columns. `initial=True` marks the point an optimizer (or a
        chain stage, or a resumed run) starts from: it is recorded only as step 0 of a fresh run,
        since otherwise it was recorded already. Returns True if the callback asked to stop; raises Diverged, without
        recording it, for an iterate beyond the bounds of `check_bounds`."""
        self.check_bounds("largest |parameter|", _largest(x))
        self.check_bounds("|loss|", abs(ev.value))
        if initial and (self.last is not None or self.next_step > 0):
            return False
        step = Step(
            step=self.next_step,
            stage=self.stage,
            evaluations=self.evaluations,
            loss=ev.value,
            terms=dict(ev.terms),
            grad_norm=ev.grad_norm,
            wall_time=time.perf_counter() - self._t0,
            x=np.array(x, dtype=float),
            opt_state=dict(opt_state or {}),
            extra={**ev.columns, **(extra or {})},
        )
        self.next_step += 1
        self.last = step
        return bool(self.callback(step)) if self.callback else False

    def check_bounds(self, what: str, value: float) -> None:
        """Raise Diverged if `value` (of `what`: a point's "largest |parameter|", or "|loss|")
        exceeds GROWTH_BOUND times the session's first value of it (at least 1), or FINITE_BOUND:
        growth that no minimization makes and that a step size above the method's stability
        bound does (geometric growth). The first value is noted as the start."""
        start = self.start.setdefault(what, max(value, 1.0))
        bound = min(GROWTH_BOUND * start, FINITE_BOUND)
        if value > bound:
            raise Diverged(f"{what} {value:.3g} > {bound:.3g} at step {self.next_step} "
                           f"({GROWTH_BOUND:g} x its {start:.3g} at the start, at most {FINITE_BOUND:g})")


def _largest(x) -> float:
    return float(np.max(np.abs(x), initial=0.0))


class StabilityWarning(UserWarning):
    """A method's step size is outside its known stability bound: near a minimum its iterates
    grow instead of settling (the CLI shows it as one line)."""


def largest_curvature(objective: Objective, x, inputs: dict | None = None, iterations: int = 20,
                      rtol: float = 1e-3) -> float:
    """The largest eigenvalue of the objective's Hessian at x (<= 0: no positive curvature; NaN
    where the objective is not finite around x), by power iteration on Hessian-vector products
    from central differences of the gradient (at most `iterations` of them, two evaluations each;
    stopping once the estimate moves by less than `rtol`), shifted by the dominant eigenvalue when
    that is negative. The Rayleigh quotients never exceed it, so a bound checked with the estimate
    errs on the side of silence. The evaluations are a diagnostic, not counted as the run's."""
    x = np.asarray(x, dtype=float)
    h = 1e-5 * max(1.0, _largest(x))

    def dominant(shift):
        v = np.random.default_rng(0).standard_normal(x.size)
        v /= np.linalg.norm(v)
        estimate = np.inf
        for _ in range(iterations):
            hv = (objective.evaluate(x + h * v, inputs).grad - objective.evaluate(x - h * v, inputs).grad) / (2 * h)
            w = hv - shift * v
            previous, estimate = estimate, float(v @ w)
            norm = np.linalg.norm(w)
            if norm == 0 or abs(estimate - previous) <= rtol * abs(estimate):
                break
            v = w / norm
        return estimate + shift

    try:
        top = dominant(0.0)
        return top if top >= 0 else dominant(top)
    except NonFiniteError:
        return float("nan")


STABILITY_CHECK = Integer("stability_check", 20, "Hessian-vector products (two evaluations each) the start may "
                          "spend estimating the largest curvature for the step-size warning (0: no check)", low=0)
"""The setting of the methods that check their step size at the start (`largest_curvature`)."""


def check_step(owner: str, lr: float, curvature: float, limit: float, what: str) -> None:
    """Warn (StabilityWarning) if lr * curvature >= limit: gradient steps of size lr on a loss of
    this curvature are unstable (|1 - lr lambda| > 1 for plain gradient descent, limit 2)."""
    if lr * curvature >= limit:
        warnings.warn(f"{owner}: lr * ({what}) = {lr:g} * {curvature:.4g} = {lr * curvature:.4g} is above the "
                      f"stability bound {limit:g}: the iterates grow instead of settling; lr below "
                      f"{limit / curvature:.4g} is stable there", StabilityWarning, stacklevel=2)


class Optimizer(ABC):
    """Minimizes an objective from x0, reporting each iterate to a monitor.

    Subclasses set `name`, declare their settings once in `SETTINGS` (tcnet.settings: name,
    default, allowed values, one line of doc; validation, the defaults, the saved `config` and
    `tcnet plugins NAME` follow from it), check relations between settings in `check`, and
    implement `iterate`. `opt_state` is the snapshot of a reported step (see Step): an optimizer
    continues from it exactly where its algorithm allows, and documents where not. `aliases` are
    former names still accepted in specs.
    """

    name: ClassVar[str] = ""
    aliases: ClassVar[tuple[str, ...]] = ()
    SETTINGS: ClassVar[Settings] = Settings()

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "defaults" in cls.__dict__:
            raise TypeError(f"optimizer {cls.__name__}: declare its settings as SETTINGS = Settings(...) "
                            "(tcnet.settings), not a `defaults` dict")

    def __init__(self, **settings):
        self.settings = self.SETTINGS.resolve(self.name, settings)
        self.check()

    def check(self) -> None:
        """Validate relations between settings; raise ConfigError naming the setting."""

    @classmethod
    def from_config(cls, settings: dict, build: Callable[[dict], "Optimizer"]) -> "Optimizer":
        """An instance from JSON settings; `build` makes nested optimizers from their configs."""
        return cls(**settings)

    @property
    def config(self) -> dict:
        """JSON-serializable description from which `from_config` rebuilds this optimizer."""
        return {"name": self.name, **self.settings}

    def for_dynamics(self, dynamics) -> "Optimizer":
        """This optimizer with the settings whose default depends on the dynamics (None standing
        for "the model's own value") filled in for `dynamics`, so that the spec a run stores holds
        the values it ran with; itself where there are none."""
        return self

    def minimize(self, objective: Objective, start, monitor: Monitor | None = None) -> Result:
        """Minimize from `start`: a point, or the Checkpoint of an interrupted run (whose numbering,
        clock, stage, evaluation count and optimizer snapshot then go on)."""
        monitor = monitor if monitor is not None else Monitor()
        opt_state = {}
        if isinstance(start, Checkpoint):
            monitor.resume(start)
            start, opt_state = start.x, dict(start.opt_state)
        x0 = np.array(start, dtype=float)
        try:
            return self.iterate(objective, x0, monitor, opt_state)
        except (NonFiniteError, Diverged) as err:
            x = monitor.last.x if monitor.last is not None else x0
            steps = monitor.last.step if monitor.last is not None else 0
            status = Status.DIVERGED if isinstance(err, Diverged) else Status.NON_FINITE
            return Result(x, status, str(err), steps, monitor.evaluations)

    @abstractmethod
    def iterate(self, objective: Objective, x0: np.ndarray, monitor: Monitor, opt_state: dict) -> Result:
        """Run the algorithm from x0 (and `opt_state`, empty for a fresh start); let
        NonFiniteError and Diverged from monitor.evaluate and monitor.report propagate."""

    def check_resume(self, checkpoint: Checkpoint, size: int) -> None:
        """Raise ConfigError naming what is wrong unless this optimizer can continue from
        `checkpoint` (read back from a file, so anything may be in it) of a network with `size`
        trainable parameters: its x finite of shape (size,), its stage 0 (a staged optimizer: one
        of its stages) and its opt_state as `check_state` asks."""
        x = np.asarray(checkpoint.x)
        if x.shape != (size,) or x.dtype.kind != "f" or not np.all(np.isfinite(x)):
            raise ConfigError(f"checkpoint: x must hold {size} finite numbers (the trainable parameters), got "
                              f"{x.dtype} of shape {x.shape}")
        self._stage(checkpoint.stage).check_state(checkpoint.opt_state, size)

    def _stage(self, stage: int) -> "Optimizer":
        """The optimizer that runs stage `stage` (itself: stage 0 only)."""
        if stage != 0:
            raise ConfigError(f"checkpoint: stage must be 0 for the optimizer {self.name!r} (it has one stage), got {stage}")
        return self

    def check_state(self, opt_state: dict, size: int) -> None:
        """Raise ConfigError naming the entry unless `opt_state` is a snapshot this optimizer
        continues from for `size` parameters (default: any; an optimizer whose step reads its
        state checks what it reads)."""


def check_counter(opt_state: dict, key: str) -> None:
    """A checkpoint's count `key` (updates, iterations): an integer >= 0 where present."""
    value = opt_state.get(key, 0)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"checkpoint: state {key} must be an integer >= 0 (a count of updates), got {value!r}")


class Iterative(Optimizer):
    """An optimizer given by its update rule; the loop is written once, here.

    Each iteration evaluates the objective at x, reports x (with the history columns of
    `columns`), ends the run if `stop` says so or `steps` updates are done, and otherwise moves
    to `step`'s new point and state. The loop keeps the update count in `opt_state["t"]`, numbers
    and reports the steps, counts evaluations, resumes from a checkpoint's opt_state and returns
    the status ("stopped", "max_steps", or what `stop` says; "non-finite" and "diverged" come from
    Optimizer.minimize). A subclass writes its rule:

    - `step(x, ev, opt_state) -> (x_new, opt_state_new)`: one update, from the evaluation `ev` at x
      (required; opt_state_new need not carry "t");
    - `init(x0) -> dict`: the opt_state at the start (default: empty);
    - `stop(ev, opt_state) -> (status, message) | None`: its own stopping test at a reported point;
    - `columns(ev, opt_state) -> dict`: optimizer-specific history scalars at a reported point;
    - `setup(objective) -> Objective` and `evaluate(x, opt_state) -> Evaluation`: what is
      evaluated (default: the run's objective at x, with no inputs); a rule that needs more
      (a Lagrangian built from the run's terms, a multiplier passed as an input, a second gradient
      in its step) keeps it on `self` in `setup` and evaluates through `self.monitor.evaluate`
      (which counts).

    The loop runs on a copy of the optimizer made for the run, so `setup` may keep what it derives
    on `self` without touching the instance a spec built.
    """

    SETTINGS = Settings(Integer("steps", 100, "maximum number of updates", low=0))
    STATE: ClassVar[tuple[str, ...]] = ()
    """The entries of the rule's opt_state that are arrays shaped like x (Adam's m and v), which
    a resumed run's checkpoint must hold (`check_state`)."""

    def check_state(self, opt_state, size):
        """The update count t an integer >= 0, and every entry of STATE a finite array of shape (size,)."""
        check_counter(opt_state, "t")
        for key in self.STATE:
            a = opt_state.get(key)
            if not isinstance(a, np.ndarray) or a.shape != (size,) or a.dtype.kind not in "fiu" or not np.all(np.isfinite(a)):
                found = "nothing" if a is None else f"{type(a).__name__} {getattr(a, 'shape', '')}"
                raise ConfigError(f"checkpoint: state {key} of {self.name!r} must be {size} finite numbers "
                                  f"(one per trainable parameter), got {found}")

    # --- the rule (override) ------------------------------------------------------------------
    def setup(self, objective: Objective) -> Objective:
        """What the loop evaluates (default: the run's objective itself)."""
        return objective

    def init(self, x0: np.ndarray) -> dict:
        """The optimizer's state at the starting point (without "t", which the loop keeps)."""
        return {}

    def evaluate(self, x, opt_state: dict) -> Evaluation:
        """The evaluation at x that the report, the stopping test and the step read."""
        return self.monitor.evaluate(self.objective, x)

    @abstractmethod
    def step(self, x, ev: Evaluation, opt_state: dict) -> tuple[np.ndarray, dict]:
        """One update: the new point and the new state."""

    def stop(self, ev: Evaluation, opt_state: dict) -> tuple[str, str] | None:
        """(status, message) to end the run at this reported point, or None to go on."""
        return None

    def columns(self, ev: Evaluation, opt_state: dict) -> dict:
        """Optimizer-specific scalars for the history at this reported point."""
        return {}

    # --- the loop (written once) --------------------------------------------------------------
    def iterate(self, objective, x0, monitor, opt_state):
        rule = copy.copy(self)
        rule.monitor = monitor
        rule.objective = rule.setup(objective)
        steps = self.settings["steps"]
        state = {"t": 0, **opt_state} if opt_state else {"t": 0, **rule.init(x0)}
        x, first = x0, True
        while True:
            t = state["t"]
            ev = rule.evaluate(x, state)
            if monitor.report(x, ev, opt_state=state, extra=rule.columns(ev, state), initial=first):
                return Result(x, Status.STOPPED, "stopped by callback", t, monitor.evaluations)
            end = rule.stop(ev, state)
            if end is not None:
                return Result(x, *end, t, monitor.evaluations)
            if t >= steps:
                return Result(x, Status.MAX_STEPS, f"{steps} steps done", t, monitor.evaluations)
            x, new = rule.step(x, ev, state)
            state, first = {**new, "t": t + 1}, False


class FirstOrder(Iterative):
    """Fixed-step-count gradient methods: `steps` updates, or fewer once |grad| < gtol."""

    SETTINGS = Iterative.SETTINGS + Settings(
        Real("lr", 0.01, "learning rate (step size)", low=0, low_open=True),
        Real("gtol", 0.0, "stop once |grad| <= gtol (0: run every step)", low=0),
    )

    def stop(self, ev, opt_state):
        if ev.grad_norm <= self.settings["gtol"]:
            return Status.CONVERGED, f"|grad| = {ev.grad_norm:.3g} <= gtol"
        return None


class SGD(FirstOrder):
    """Gradient descent x <- x - lr g, with optional heavy-ball momentum."""

    name = "sgd"
    SETTINGS = FirstOrder.SETTINGS + Settings(
        Real("momentum", 0.0, "heavy-ball momentum (0: plain gradient descent)", low=0, high=1, high_open=True),
        STABILITY_CHECK,
    )

    STATE = ("velocity",)

    def init(self, x0):
        """Zero velocity; warns if lr is beyond the stability bound at x0: heavy-ball steps on a
        quadratic of curvature lambda settle only while lr lambda < 2 (1 + momentum)."""
        s = self.settings
        if s["stability_check"]:
            check_step(self.name, s["lr"], largest_curvature(self.objective, x0, iterations=s["stability_check"]),
                       2 * (1 + s["momentum"]), "largest curvature of the loss at the start")
        return {"velocity": np.zeros_like(x0)}

    def step(self, x, ev, opt_state):
        velocity = self.settings["momentum"] * opt_state["velocity"] - self.settings["lr"] * ev.grad
        return x + velocity, {"velocity": velocity}


class Adam(FirstOrder):
    """Adam in the Keras/TensorFlow form (eps added to sqrt(v) before bias correction of lr):

        m <- b1 m + (1-b1) g;  v <- b2 v + (1-b2) g^2
        x <- x - lr sqrt(1-b2^t)/(1-b1^t) m / (sqrt(v) + eps)

    with Keras' defaults b1 = 0.9, b2 = 0.999, eps = 1e-7, as in the published preparatory-network
    optimization. Resuming from a reported state is exact (bitwise).
    """

    name = "adam"
    SETTINGS = FirstOrder.SETTINGS + Settings(
        Real("beta1", 0.9, "decay rate of the first-moment average m", low=0, high=1, high_open=True),
        Real("beta2", 0.999, "decay rate of the second-moment average v", low=0, high=1, high_open=True),
        Real("eps", 1e-7, "added to sqrt(v) in the denominator", low=0, low_open=True),
    )

    STATE = ("m", "v")

    def init(self, x0):
        return {"m": np.zeros_like(x0), "v": np.zeros_like(x0)}

    def step(self, x, ev, opt_state):
        b1, b2, eps, lr = (self.settings[k] for k in ("beta1", "beta2", "eps", "lr"))
        g, t = ev.grad, opt_state["t"] + 1
        m = b1 * opt_state["m"] + (1 - b1) * g
        v = b2 * opt_state["v"] + (1 - b2) * g * g
        rate = lr * np.sqrt(1 - b2**t) / (1 - b1**t)
        return x - rate * m / (np.sqrt(v) + eps), {"m": m, "v": v}


class LBFGS(Optimizer):
    """scipy's L-BFGS-B without bounds: up to `max_iter` iterations, stopping when the largest
    gradient component is below `gtol` or the relative decrease is below `ftol`.

    Resuming restarts L-BFGS at the checkpoint with the remaining iteration budget but an empty
    curvature memory (scipy does not expose it), so a resumed L-BFGS stage is not bitwise equal to
    an uninterrupted one; it converges to the same minimum to within the tolerances.
    """

    name = "lbfgs"
    SETTINGS = Settings(
        Integer("max_iter", 200, "maximum number of iterations", low=0),
        Real("gtol", 1e-5, "stop once the largest gradient component is <= gtol", low=0),
        Real("ftol", 2.220446049250313e-09, "stop once the relative decrease of the loss is <= ftol", low=0),
        Integer("memory", 10, "number of curvature pairs kept (scipy's maxcor)", low=1),
    )

    def check_state(self, opt_state, size):
        check_counter(opt_state, "nit")

    def iterate(self, objective, x0, monitor, opt_state):
        nit = opt_state.get("nit", 0)
        budget = self.settings["max_iter"] - nit
        ev = monitor.evaluate(objective, x0)
        if monitor.report(x0, ev, opt_state={"nit": nit}, initial=True):
            return Result(x0, Status.STOPPED, "stopped by callback", 0, monitor.evaluations)
        if budget <= 0:
            return Result(x0, Status.MAX_STEPS, "no iterations left", 0, monitor.evaluations)
        stopped = False
        taken = 0

        def fun(x):  # scipy's first call is at x0: the monitor returns the evaluation above
            e = monitor.evaluate(objective, x)
            return e.value, e.grad

        def callback(intermediate_result):
            nonlocal stopped, taken
            x = intermediate_result.x
            e = monitor.evaluate(objective, x)  # the line search's last point: not evaluated again
            taken += 1
            if monitor.report(x, e, opt_state={"nit": nit + taken}):
                stopped = True
                raise StopIteration

        res = scipy.optimize.minimize(
            fun, x0, jac=True, method="L-BFGS-B", callback=callback,
            options={"maxiter": budget, "gtol": self.settings["gtol"], "ftol": self.settings["ftol"],
                     "maxcor": self.settings["memory"]},
        )
        x = monitor.last.x if monitor.last is not None else res.x
        if stopped:
            status = Status.STOPPED
        elif res.success:
            status = Status.CONVERGED
        elif taken >= budget:
            status = Status.MAX_STEPS
        else:
            status = Status.NO_PROGRESS
        return Result(x, status, str(res.message), taken, monitor.evaluations)


class Staged(Optimizer):
    """Stages run one after another, each starting where the previous one ended (e.g. Adam, then
    L-BFGS). Steps are numbered continuously; each step records its stage index. (Not optax's
    `chain`, which composes update rules into one; specs may still say "chain".)"""

    name = "staged"
    aliases = ("chain",)
    SETTINGS = Settings(Setting("stages", [], "the optimizers' specs, run one after another"))

    def __init__(self, *stages: Optimizer):
        if not stages:
            raise ConfigError("staged: stages must hold at least one optimizer")
        for s in stages:
            if not isinstance(s, Optimizer):
                raise ConfigError(f"staged: stages must be optimizers, got {s!r}")
        self.stages = stages
        super().__init__(stages=[s.config for s in stages])

    @classmethod
    def from_config(cls, settings, build):
        no_extra(cls.name, settings, cls.SETTINGS.names)
        return cls(*(build(s) for s in settings.get("stages", [])))

    def _stage(self, stage):
        if not 0 <= stage < len(self.stages):
            raise ConfigError(f"checkpoint: stage must be one of the {len(self.stages)} stages (0 to "
                              f"{len(self.stages) - 1}), got {stage}")
        return self.stages[stage]

    def for_dynamics(self, dynamics):
        return Staged(*(s.for_dynamics(dynamics) for s in self.stages))

    def iterate(self, objective, x0, monitor, opt_state):
        first = monitor.stage  # a resumed run goes on in the stage of its checkpoint
        x, results = x0, []
        for k in range(first, len(self.stages)):
            monitor.stage = k
            result = self.stages[k].iterate(objective, x, monitor, opt_state if k == first else {})
            results.append(result)
            x = result.x
            if result.status == Status.STOPPED:
                break
        last = results[-1]
        message = "; ".join(f"stage {first + i} ({self.stages[first + i].name}): {r.status}, {r.message}"
                            for i, r in enumerate(results))
        return Result(x, last.status, message, sum(r.steps for r in results), monitor.evaluations)


@hookimpl
def tcnet_optimizers():
    return [SGD, Adam, LBFGS, Staged]
