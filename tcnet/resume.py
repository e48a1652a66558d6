"""Resuming a stored run: the run layer's side of an interrupted run. The store keeps the run (its
checkpoint, spec and initial network) and records the continuation (`RunWriter` with
`resume_from`); running the optimization again is `tcnet.run`'s, so it lives here, above both."""
from tcnet.plugins import Registry, registry as default_registry
from tcnet.provenance import changed_files, code_digests, recorded_code, warn_changed
from tcnet.run import RunResult, run
from tcnet.spec import build_optimizer
from tcnet.status import RESUMABLE
from tcnet.store import RunWriter, StoreError, read_run
from tcnet.validate import ConfigError


def resume(path, run_id: str, progress: bool = False, *, plugins: Registry | None = None,
           flush_steps: int = 50, flush_seconds: float = 5.0) -> RunResult:
    """Continue an interrupted or failed run from its checkpoint, appending to the same history.

    Returns tcnet.run's result for the continuation (its in-memory history holds the new steps
    only; `read_run` gives the whole). Exactness is the optimizer's: Adam/SGD continue bitwise,
    L-BFGS restarts its curvature memory (see tcnet/optim.py).
    """
    plugins = plugins or default_registry()
    record = read_run(path, run_id, plugins=plugins)
    if record.status not in RESUMABLE:
        raise StoreError(f"{record.path}: run {run_id!r} cannot be resumed (expected status interrupted "
                         f"or failed, found {record.status})")
    if record.checkpoint is None:
        raise StoreError(f"{record.path}: run {run_id!r} has no checkpoint (it stopped before its first "
                         "flush); start it again")
    initial = record.initial
    warn_changed(f"{record.path}: the steps so far of run {run_id!r} were", changed_files(
        recorded_code(record.attrs), code_digests(record.spec, plugins)), "it goes on with the current code",
        stacklevel=2)
    try:  # a checkpoint read back from a file: checked before the run is reopened
        build_optimizer(record.spec["optimizer"], plugins).check_resume(record.checkpoint, initial.size)
    except ConfigError as err:
        raise StoreError(f"{record.path}: run {run_id!r} cannot be resumed from its checkpoint (step "
                         f"{record.checkpoint.step}): {err}") from None
    writer = RunWriter(path, run_id, flush_steps=flush_steps, flush_seconds=flush_seconds,
                       resume_from=record.checkpoint.step)
    return run(record.spec, recorders=[writer], progress=progress, plugins=plugins,
               dynamics=initial, resume=record.checkpoint)
