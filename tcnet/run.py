"""One optimization run: a run spec (tcnet.spec), checked and completed before anything runs, the
objects built from it, and the loop that feeds every step to a recorder (the HDF5 run writer, an
in-memory `History`, a progress bar).
"""
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from threadpoolctl import threadpool_limits
from tqdm.auto import tqdm

from tcnet.dynamics import Dynamics
from tcnet.loss import Evaluation
from tcnet.optim import Checkpoint, Monitor, Optimizer, Result, Step
from tcnet.plugins import Registry, registry as default_registry
from tcnet.provenance import code_digests
from tcnet.spec import RunSpec, build_dynamics, build_objective, build_optimizer
from tcnet.threads import auto_threads
from tcnet.validate import ConfigError


class Recorder(Protocol):
    """Receives a run as it happens (the store's run writer implements this). A recorder may also
    define `fail(error)`, called when the optimization raises (then the error propagates), and
    `provenance(code)`, called before `start` with the digests of the run's plugin code
    (tcnet.provenance.code_digests)."""

    def start(self, spec: RunSpec, dynamics: Dynamics) -> None: ...
    def step(self, step: Step) -> None: ...
    def finish(self, result: Result, final: Dynamics) -> None: ...


@dataclass
class History:
    """The steps of a run held in memory, as columns."""

    steps: list = field(default_factory=list)

    def start(self, spec, dynamics):
        self.steps.clear()

    def step(self, step: Step):
        self.steps.append(step)

    def finish(self, result, final):
        pass

    def column(self, key: str) -> np.ndarray:
        """'step', 'stage', 'loss', 'grad_norm', 'wall_time', or 'terms/<label>'."""
        if key.startswith("terms/"):
            return np.array([s.terms[key[6:]] for s in self.steps])
        return np.array([getattr(s, key) for s in self.steps])


@dataclass(frozen=True)
class RunResult:
    """A run's resolved spec, initial and final networks, how it ended, its steps, and the
    objective's last evaluation at the final point (its side results, e.g. SIMPL's M-step, need
    not be computed again); None where the optimizer evaluated elsewhere last (e.g. a non-finite
    iterate after the final, last finite one)."""

    spec: RunSpec
    initial: Dynamics
    final: Dynamics
    result: Result
    history: History
    evaluation: Evaluation | None = None


def recorded(spec: RunSpec, initial: Dynamics, plugins: Registry) -> tuple[RunSpec, Optimizer]:
    """The spec a run of the resolved `spec` from the network `initial` records, and its optimizer:
    the network's configuration in the dynamics entry and the optimizer's settings whose default
    depends on the model filled in for `initial` (`Optimizer.for_dynamics`). `tcnet run` compares it with the specs a file holds to find the
    run it continues."""
    optimizer = build_optimizer(spec.optimizer, plugins).for_dynamics(initial)
    # the network's own configuration over the dynamics entry: defaults a dynamics resolves at
    # construction (a space's bandwidth, a preset's parameters) are recorded as numbers
    dynamics = {**spec.dynamics, "name": initial.name, **initial.config}
    return RunSpec(dynamics, spec.loss, optimizer.config), optimizer


def run(spec: RunSpec | dict, *, recorders=(), progress=True, plugins: Registry | None = None,
        dynamics: Dynamics | None = None, resume: Checkpoint | None = None, threads: int | None | str = "auto") -> RunResult:
    """Check `spec` against the plugins' declarations, build it and run it; every step goes to an
    in-memory History and to each recorder, which receive the resolved spec (every default filled
    in: `RunSpec.resolve`).

    `dynamics` replaces the one the spec would create (e.g. a network loaded from a file);
    `resume` continues from a checkpoint of an interrupted run of the same spec. `threads` is the
    number of BLAS threads during the optimization: "auto" (`auto_threads`: 1 unless the
    environment sets it), a number, or None to keep the process's own setting; the setting before
    the call is restored when it returns (OpenBLAS ignores a raise of its count asked from a thread
    other than the main one, so a run called from a worker thread leaves one thread behind).
    """
    if threads != "auto" and threads is not None and not (type(threads) is int and threads >= 1):
        raise ConfigError(f"run: threads must be 'auto', None or a positive integer, got {threads!r}")
    spec = spec if isinstance(spec, RunSpec) else RunSpec.from_dict(spec)
    plugins = plugins or default_registry()
    spec = spec.resolve(plugins, dynamics=dynamics is None)  # every key checked before anything is built
    initial = dynamics if dynamics is not None else build_dynamics(spec.dynamics, plugins)
    objective = build_objective(initial, spec.loss, plugins)
    spec, optimizer = recorded(spec, initial, plugins)
    history = History()
    sinks = [history, *recorders]
    code = code_digests(spec.as_dict(), plugins)
    for r in sinks:
        if hasattr(r, "provenance"):
            r.provenance(code)
        r.start(spec, initial)
    bar = tqdm(desc=f"{initial.name} run", unit="step", disable=not progress, leave=False)

    def on_step(step: Step):
        for r in sinks:
            r.step(step)
        bar.update(1)
        bar.set_postfix(loss=f"{step.loss:.6g}", stage=step.stage, refresh=False)

    threads = auto_threads() if threads == "auto" else threads
    monitor = Monitor(on_step)
    try:
        with threadpool_limits(threads, user_api="blas"):
            result = optimizer.minimize(objective, initial.vector() if resume is None else resume, monitor)
    except BaseException as err:  # tell recorders that can mark the run failed/interrupted, re-raise
        for r in sinks:
            if hasattr(r, "fail"):
                r.fail(err)
        raise
    finally:
        bar.close()
    final = initial.with_vector(result.x)
    for r in sinks:
        r.finish(result, final)
    return RunResult(spec, initial, final, result, history, monitor.evaluation_at(result.x))
