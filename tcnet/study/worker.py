"""What runs outside the driver: the task a worker runs and the executors that run it.

`execute_run` is submitted by reference (module path `tcnet.study.worker`) to spawned local
worker processes and to dask workers, so it and `_watch_parent` (the local pool's initializer)
must stay importable module-level functions here.
"""
import concurrent.futures
import contextlib
import json
import multiprocessing
import os
import socket
import threading
import time
import traceback


from tcnet.spec import RunSpec
from tcnet.threads import worker_environment
from tcnet.validate import ConfigError, integer



# --- the task a worker runs ------------------------------------------------------------------
def execute_run(spec_json: str, plugin_files: list) -> dict:
    """Run one spec in this process and return plain data (strings, numbers, numpy arrays):

    status (the store's: "finished", "non-finite", "diverged" or "failed"), error ("<Type>: <text>"), code
    (the digests of the plugin code it ran, tcnet.provenance; absent if the spec did not load), the
    spec as it ran (every default filled in), the result's counts and message, the network (name,
    config, seed, initial and final parameter arrays, and its data once), the
    history columns (tcnet.store.history_columns), the last step's Checkpoint (None without
    steps), wall time and worker. A run that raises is returned as
    failed with its error and the steps it made; it never raises itself.
    """
    from tcnet.optim import Checkpoint
    from tcnet.plugins import registry
    from tcnet.provenance import code_digests
    from tcnet.run import History, run
    from tcnet.spec import build_dynamics
    from tcnet.status import Status, ended_status
    from tcnet.store import history_columns

    t0 = time.perf_counter()
    out = {"worker": f"{socket.gethostname()}:{os.getpid()}", "error": "", "initial": None}
    history = History()
    try:
        spec = RunSpec.from_dict(json.loads(spec_json))
        plugins = registry(plugin_files)
        out["code"] = code_digests(spec.as_dict(), plugins)  # the code this worker runs the spec with
        initial = build_dynamics(spec.dynamics, plugins)
        out.update(name=initial.name, config=initial.config, seed=initial.seed, initial=dict(initial.arrays),
                   data=dict(initial.data))
        res = run(spec, progress=False, plugins=plugins, dynamics=initial, recorders=[history])
        r = res.result
        out.update(spec=res.spec.as_dict(), status=ended_status(r.status), optimizer_status=r.status,
                   message=r.message, steps=r.steps, evaluations=r.evaluations, final=dict(res.final.arrays))
    except Exception as err:
        out.update(status=Status.FAILED, error=f"{type(err).__name__}: {err}", traceback=traceback.format_exc())
    steps = history.steps
    out["history"] = history_columns(steps)
    out["checkpoint"] = Checkpoint.at(steps[-1]) if steps else None
    out["wall_time"] = time.perf_counter() - t0
    return out



# --- executors ------------------------------------------------------------------------------------
def _watch_parent(parent: int) -> None:
    """Started in each local worker: exit when the driver is gone (e.g. killed), so no orphan
    process waits forever on the task queue."""

    def watch():
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


@contextlib.contextmanager
def _tasks(executor, workers, n_tasks):
    """(submit, completed) for a local pool, a concurrent.futures executor or a dask Client."""
    if executor is None:
        workers = workers or os.cpu_count() or 1
        integer("study", "workers", workers, low=1)
        pool = concurrent.futures.ProcessPoolExecutor(
            max_workers=min(workers, n_tasks), mp_context=multiprocessing.get_context("spawn"),
            initializer=_watch_parent, initargs=(os.getpid(),))
        try:
            with worker_environment():  # workers are spawned at submit
                yield pool.submit, concurrent.futures.as_completed
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
    elif isinstance(executor, concurrent.futures.Executor):
        yield executor.submit, concurrent.futures.as_completed
    elif type(executor).__module__.startswith("distributed"):
        from distributed import as_completed

        yield (lambda fn, *args: executor.submit(fn, *args, pure=False)), as_completed
    else:
        raise ConfigError(f"study: executor must be None, a concurrent.futures.Executor or a "
                          f"dask.distributed Client, got {executor!r}")
