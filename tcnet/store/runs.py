"""Runs (/runs/<id>): `RunWriter` records a run with a two-phase commit per flush, `read_run` reads
one back (a killed writer's run reads as "interrupted"), `resume` continues it from its checkpoint."""
import json
import os
import socket
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from tcnet import __version__
from tcnet.dynamics import Dynamics
from tcnet.plugins import Registry, registry as default_registry
from tcnet.optim import Checkpoint
from tcnet.run import RunResult, run
from tcnet.spec import RunSpec
from tcnet.store._files import (
    CHUNK, FINAL_WAIT, FINISHED, FLUSH_WAIT, HISTORY_COLUMNS, STATUSES, DiskFullError, FileBusyError, StoreError,
    _WriteLock, create_dataset, _dataset, _group, _h5name, _has, _int_attr, _json_attr, _lock_owner, _malformed,
    _member, _now, _one_line, _owner, _reading, _real_attr, set_attrs, _text, _text_attr, _writing, ended_status,
)
from tcnet.store.networks import (
    NetworkData, _checkpoint_group, _nbytes, _put, _read_network, _read_tree, _write_network, _write_tree,
    no_initial_network,
)
from tcnet.validate import ConfigError, integer, positive


class RunWriter:
    """Recorder for `tcnet.run` that writes the run to /runs/<run_id> of an HDF5 file.

    `run_id` defaults to the next free 'run-NNNN'. Steps are appended every `flush_steps` steps or
    `flush_seconds` seconds, whichever comes first (checked at each step), with the checkpoint of
    the last appended step. `resume_from=k` continues the existing run `run_id` after its
    checkpoint step k (see `resume`).

    Each flush commits in two phases so that a kill at any moment leaves a consistent run:
    (1) the new history rows go past the committed length `rows`, and the checkpoint goes to the
    checkpoint slot (0 or 1) not in use; the file is flushed. (2) the run attributes `rows` and
    `checkpoint` (the slot) are modified in place. Readers see only the committed rows and slot.

    Before each commit it is checked that the file can grow by what it needs (`_files._reserve`): a full
    disk raises DiskFullError before anything is written, naming what is intact and how to resume;
    the run is left interrupted at its last committed checkpoint.
    """

    def __init__(self, path, run_id: str | None = None, *, flush_steps: int = 50,
                 flush_seconds: float = 5.0, resume_from: int | None = None):
        self.flush_steps = integer("RunWriter", "flush_steps", flush_steps, low=1)
        self.flush_seconds = positive("RunWriter", "flush_seconds", flush_seconds)
        if resume_from is not None and run_id is None:
            raise ConfigError("RunWriter: resume_from needs the run_id of the run to continue")
        self.path = Path(path)
        if self.path.name in ("", ".", ".."):
            raise ConfigError(f"RunWriter: the file must be a path to a file, got {str(path)!r}")
        self.run_id = run_id
        self.resume_from = resume_from
        self._lock = _WriteLock(self.path)
        self._buffer: list = []
        self._flushed_at = 0.0
        self._warned = False
        self._committed = resume_from  # step of the last committed checkpoint
        self._keys: set = set()  # terms and extra keys of the steps so far (their columns grow)

    # Recorder protocol
    def start(self, spec: RunSpec, dynamics: Dynamics | None) -> None:
        """Create the run (or reopen it to resume). `dynamics` None records a run whose network
        could not be created: it has no params/initial, and `fail` follows with the reason."""
        if self.run_id is not None:
            _h5name(self.run_id, "run", self.path)
        self._lock.acquire(_owner(self.run_id))
        try:
            initial = 0 if dynamics is None else _nbytes(dynamics.arrays)
            with self._writing(FINAL_WAIT, initial + 8 * CHUNK * (len(HISTORY_COLUMNS) + len(spec.loss))) as f:
                runs = f["runs"] if "runs" in f else f.create_group("runs", track_order=True)
                if self.resume_from is None:
                    self._create(runs, spec, dynamics)
                else:
                    self._reopen(runs)
            self._lock.describe(_owner(self.run_id))
        except BaseException:
            self._lock.release()
            raise
        self._buffer.clear()
        self._flushed_at = time.monotonic()

    def step(self, step) -> None:
        self._buffer.append(step)
        self._keys.update(step.terms, step.extra)
        if len(self._buffer) >= self.flush_steps or time.monotonic() - self._flushed_at >= self.flush_seconds:
            self.flush(wait=FLUSH_WAIT, must=False)

    def finish(self, result, final: Dynamics) -> None:
        status = ended_status(result.status)
        try:
            with self._writing(FINAL_WAIT, self._growth() + _nbytes(final.arrays)) as f:
                self._commit(f, final=final, attrs=dict(
                    status=status, message=result.message, optimizer_status=result.status,
                    evaluations=np.int64(result.evaluations), ended=_now()))
        finally:
            self._lock.release()

    def fail(self, error: BaseException | str) -> None:
        """Record the steps so far and mark the run interrupted (KeyboardInterrupt, a full disk)
        or failed; `error` is the exception, or the message to record ("<ErrorType>: <text>").
        After a full disk the buffered steps are dropped; if even the status cannot be written,
        the run still reads as interrupted (its writer is gone)."""
        full = isinstance(error, DiskFullError)
        status = "interrupted" if full or isinstance(error, KeyboardInterrupt) else "failed"
        if isinstance(error, str):
            text = _one_line(error)
        else:
            text = _one_line(f"{type(error).__name__}: {error}" if str(error) else type(error).__name__)
        if full:
            self._buffer = []
        try:
            with self._writing(FINAL_WAIT, self._growth()) as f:
                self._commit(f, attrs=dict(status=status, message=text, ended=_now()))
        except DiskFullError:
            pass
        except Exception as err:  # the optimizer's error is re-raised by tcnet.run; do not mask it
            warnings.warn(f"{self.path}: could not record that run {self.run_id!r} {status}: {err}", stacklevel=2)
        finally:
            self._lock.release()
        if isinstance(error, KeyboardInterrupt):
            error.add_note(self.resume_hint())

    def write(self, columns: dict, checkpoint: Checkpoint) -> None:
        """Append whole history columns (named as `history_columns` names them, of equal length,
        with every column of HISTORY_COLUMNS) and the checkpoint of their last row, in one commit
        (e.g. a run computed elsewhere, such as a study's worker). Buffered steps go first."""
        missing = [k for k in HISTORY_COLUMNS if k not in columns]
        lengths = {len(v) for v in columns.values()}
        if missing or len(lengths) != 1:
            raise StoreError(f"{self.path}: run {self.run_id!r}: history columns must include "
                             f"{', '.join(HISTORY_COLUMNS)} and have equal lengths (missing {missing}, "
                             f"lengths {sorted(lengths)})")
        self.flush()
        with self._writing(FINAL_WAIT, _growth(lengths.pop(), len(columns), checkpoint)) as f:
            self._commit(f, columns, checkpoint)

    def flush(self, wait: float | None = None, must: bool = True) -> None:
        """Append the buffered steps and their checkpoint now. A file held open by another process
        is retried for `wait` seconds; then, unless `must`, the steps stay buffered for the next flush."""
        if not self._buffer:
            return
        try:
            with self._writing(wait, self._growth()) as f:
                self._commit(f)
        except DiskFullError:
            raise
        except FileBusyError as err:
            if must:
                raise
            if not self._warned:
                warnings.warn(f"{err}; keeping {len(self._buffer)} steps in memory until the next flush", stacklevel=2)
                self._warned = True
            return
        self._flushed_at = time.monotonic()

    # writing
    @contextmanager
    def _writing(self, wait: float | None, reserve: int):
        """The file open to write, checked to be able to grow by `reserve` bytes; a full disk is a
        DiskFullError in one line saying what is intact and how to go on."""
        try:
            with _writing(self.path, wait, reserve) as f:
                yield f
        except DiskFullError as err:
            full = DiskFullError(f"no space left on device writing {self.path} ({err.reason}); runs before "
                                 f"{self.run_id or 'this one'} are intact; {self.resume_hint()} once there is space")
            full.reason = err.reason
            raise full from None

    def resume_hint(self) -> str:
        """What of this run is kept and how to continue it, in a few words."""
        if self._committed is None:
            return f"run {self.run_id or '(new)'} has no checkpoint yet: start it again"
        return (f"run {self.run_id} is interrupted at step {self._committed}: resume it with "
                f"`tcnet resume {self.path} {self.run_id}`")

    def _growth(self) -> int:
        """Bytes a commit of the buffered steps can add to the file at most (see `_growth`)."""
        if not self._buffer:
            return 0
        return _growth(len(self._buffer), len(HISTORY_COLUMNS) + len(self._keys), Checkpoint.at(self._buffer[-1]))

    def _create(self, runs: h5py.Group, spec: RunSpec, dynamics: Dynamics) -> None:
        if self.run_id is None:
            n = len(runs) + 1
            while f"run-{n:04d}" in runs:
                n += 1
            self.run_id = f"run-{n:04d}"
        elif self.run_id in runs:
            raise StoreError(f"{self.path}: run {self.run_id!r} exists already (choose another run_id, or "
                             "resume it with tcnet.store.resume)")
        g = runs.create_group(self.run_id)
        set_attrs(g, config=json.dumps(spec.as_dict(), sort_keys=True), status="running", message="",
                   writer=f"{socket.gethostname()}:{os.getpid()}", tcnet_version=__version__,
                   started=_now(), rows=np.int64(0), checkpoint=np.int64(-1))
        params = g.create_group("params")
        if dynamics is not None:
            _write_network(params.create_group("initial", track_order=True), dynamics, self.path)
        h = g.create_group("history")
        for name, dtype in HISTORY_COLUMNS.items():
            create_dataset(h, name, shape=(0,), maxshape=(None,), dtype=dtype, chunks=(CHUNK,))
        terms = h.create_group("terms", track_order=True)
        for label in dict.fromkeys(t.get("label") or t["name"] for t in spec.loss):
            _column(terms, _h5name(label, "loss term label", self.path), 0)
        h.create_group("extra", track_order=True)
        c = g.create_group("checkpoint")
        for slot in ("0", "1"):
            c.create_group(slot)

    def _reopen(self, runs: h5py.Group) -> None:
        if not _has(runs, self.run_id):
            raise StoreError(f"{self.path}: no run {self.run_id!r} to resume (runs: {', '.join(runs) or 'none'})")
        g = runs[self.run_id]
        status = _text(g.attrs.get("status", ""))
        if status not in ("running", "interrupted", "failed"):
            raise StoreError(f"{self.path}: run {self.run_id!r} cannot be resumed (expected status interrupted "
                             f"or failed, found {status})")
        c = _checkpoint_group(g)
        found = "none" if c is None else int(c.attrs["step"])
        if found != self.resume_from:
            raise StoreError(f"{self.path}: run {self.run_id!r} checkpoint moved (expected step "
                             f"{self.resume_from}, found {found})")
        rows = int(g.attrs["rows"])
        for ds in _history_datasets(g["history"]):
            ds.resize((rows,))  # drop rows of an uncommitted flush
        resumed = list(g.attrs.get("resumed_at", [])) + [self.resume_from]
        set_attrs(g, status="running", message="", writer=f"{socket.gethostname()}:{os.getpid()}",
                   resumed_at=np.array(resumed, dtype=np.int64))

    def _commit(self, f: h5py.File, columns: dict | None = None, checkpoint: Checkpoint | None = None,
                final: Dynamics | None = None, attrs: dict | None = None) -> None:
        """Write history `columns` and their `checkpoint` (default: those of the buffered steps),
        the final network and the closing attributes, in the two phases of the class docstring."""
        if columns is None and self._buffer:
            columns, checkpoint = history_columns(self._buffer), Checkpoint.at(self._buffer[-1])
        g = f["runs"][self.run_id]
        h = g["history"]
        rows, slot = int(g.attrs["rows"]), int(g.attrs["checkpoint"])
        if columns:
            n = rows + len(columns["step"])
            for name in HISTORY_COLUMNS:
                h[name].resize((n,))
                h[name][rows:n] = columns[name]
            for key in columns:
                sub, _, name = key.partition("/")
                if sub in ("terms", "extra") and name not in h[sub]:
                    _column(h[sub], _h5name(name, f"{sub} key", self.path), rows)
            for sub in ("terms", "extra"):
                for name, ds in h[sub].items():  # NaN where these rows lack the key
                    ds.resize((n,))
                    ds[rows:n] = columns.get(f"{sub}/{name}", np.nan)
            slot = 1 - slot if slot >= 0 else 0
            c = g["checkpoint"][str(slot)]
            c.attrs["step"] = np.int64(checkpoint.step)
            c.attrs["elapsed"] = np.float64(checkpoint.elapsed)
            _put(c, "x", "array", np.asarray(checkpoint.x, dtype=np.float64))
            # checkpoint/state holds the stage and count beside the optimizer's snapshot (FORMAT.md)
            state = {"stage": checkpoint.stage, "evaluations": checkpoint.evaluations, **checkpoint.opt_state}
            _write_tree(c.require_group("state"), state, f"{self.path}: run {self.run_id!r}")
        if final is not None:
            if "final" in g["params"]:
                del g["params/final"]
            _write_network(g["params"].create_group("final", track_order=True), final, self.path)
        f.flush()  # phase 1 is on disk before anything refers to it
        if columns:
            g.attrs.modify("rows", np.int64(n))
            g.attrs.modify("checkpoint", np.int64(slot))
            self._committed = int(checkpoint.step)
        if attrs:
            f.flush()
            set_attrs(g, **attrs)
        self._buffer = []


def _growth(rows: int, columns: int, checkpoint: Checkpoint) -> int:
    """Bytes that appending `rows` rows to `columns` history columns, with their checkpoint, can
    add to a file at most: a new chunk per column per CHUNK rows plus one partly filled, and the
    checkpoint twice (its slot may be written for the first time)."""
    return 8 * CHUNK * columns * (rows // CHUNK + 2) + 2 * (np.asarray(checkpoint.x).nbytes + _nbytes(checkpoint.opt_state))


def history_columns(steps) -> dict:
    """The history columns (numpy arrays) of a list of Steps, named as the store names them:
    step, stage, loss, grad_norm, wall_time, terms/<label>, extra/<key> (NaN where a step lacks it)."""
    history = {k: np.array([getattr(s, k) for s in steps]) for k in HISTORY_COLUMNS}
    for label in dict.fromkeys(k for s in steps for k in s.terms):
        history[f"terms/{label}"] = np.array([s.terms.get(label, np.nan) for s in steps], dtype=float)
    for key in dict.fromkeys(k for s in steps for k in s.extra):
        history[f"extra/{key}"] = np.array([s.extra.get(key, np.nan) for s in steps], dtype=float)
    return history


def _column(group: h5py.Group, name: str, rows: int) -> None:
    """A float64 history column of `rows` NaNs that grows in chunks."""
    create_dataset(group, name, shape=(rows,), maxshape=(None,), dtype="float64", chunks=(CHUNK,), fillvalue=np.nan)


def _history_datasets(h: h5py.Group) -> list:
    return [h[name] for name in HISTORY_COLUMNS] + [h[s][k] for s in ("terms", "extra") for k in h[s]]


@dataclass(frozen=True)
class RunRecord:
    """A run as read back: spec, status, history columns, networks and checkpoint."""

    path: Path
    run_id: str
    spec: dict
    status: str
    message: str
    attrs: dict
    history: dict
    initial_data: NetworkData | None
    final_data: NetworkData | None
    checkpoint: Checkpoint | None
    plugins: Registry | None = field(default=None, repr=False, compare=False)

    @property
    def initial(self) -> Dynamics:
        """The network the run started from (StoreError for a run that failed creating it)."""
        if self.initial_data is None:
            raise no_initial_network(self.path, self.run_id, self.message)
        return self.initial_data.build(self.plugins)

    @property
    def final(self) -> Dynamics | None:
        """The final network (None for a run that did not finish)."""
        return None if self.final_data is None else self.final_data.build(self.plugins)

    @property
    def steps(self) -> int:
        """Number of recorded history rows."""
        return len(self.history["step"])


def _checkpoint(c: h5py.Group, where: str) -> Checkpoint:
    """A checkpoint group read back; a file written before the evaluation count was stored
    counts from 0."""
    opt_state = _read_tree(_group(c, "state", where))
    stage, evaluations = opt_state.pop("stage", 0), opt_state.pop("evaluations", 0)
    if not all(isinstance(v, int) and v >= 0 for v in (stage, evaluations)):
        raise _malformed(where, "state/stage and state/evaluations to be integers >= 0", (stage, evaluations))
    return Checkpoint(_int_attr(c, "step", where, low=0), np.array(_dataset(c, "x", where, ndim=1, kinds="f")[()]),
                      opt_state, _real_attr(c, "elapsed", where), stage, evaluations)


def list_runs(path) -> list[str]:
    """Run ids in the order they were created."""
    with _reading(path) as f:
        return list(_member(f, "runs", {}))


def read_run(path, run_id: str, *, plugins: Registry | None = None) -> RunRecord:
    """Everything stored about one run (its committed history rows and checkpoint). A run recorded
    as running whose writer no longer holds the file's writer lock was killed; its status reads
    "interrupted"."""
    path = Path(path)
    with _reading(path) as f:
        runs = _member(f, "runs", {})
        if not _has(runs, run_id):
            raise StoreError(f"{path}: no run {run_id!r} (runs: {', '.join(runs) or 'none'})")
        g = runs[run_id]
        where = f"{path}: run {run_id!r}"
        need = ("config", "status", "rows", "checkpoint")
        if any(k not in g.attrs for k in need) or "history" not in g or "params" not in g:
            raise StoreError(f"{where}: malformed run (expected attributes {', '.join(need)}, groups history "
                             f"and params; found attributes {sorted(g.attrs)}, members {sorted(g)})")
        rows = _int_attr(g, "rows", where, low=0)
        stored_status = _text_attr(g, "status", where)
        if stored_status not in STATUSES:
            raise _malformed(where, f"attribute 'status' one of {', '.join(STATUSES)}", repr(stored_status))
        spec = _json_attr(g, "config", where)
        params, h = _group(g, "params", where), _group(g, "history", where)
        if "initial" not in params and (stored_status != "failed" or rows):
            raise StoreError(f"{where}: malformed run (no params/initial, which only a run that failed "
                             "before its network was created may lack)")
        columns = {name: _dataset(h, name, f"{where} history", ndim=1) for name in HISTORY_COLUMNS}
        for sub in ("terms", "extra"):
            group = _group(h, sub, f"{where} history")
            columns.update({f"{sub}/{k}": _dataset(group, k, f"{where} history/{sub}", ndim=1) for k in group})
        short = {k: ds.shape[0] for k, ds in columns.items() if ds.shape[0] < rows}
        if short:
            raise StoreError(f"{where}: malformed history (expected {rows} rows in every column, found {short})")
        history = {k: ds[:rows] for k, ds in columns.items()}
        attrs = {k: (_text(v) if isinstance(v, (str, bytes)) else v) for k, v in g.attrs.items() if k != "config"}
        c = _checkpoint_group(g, where)
        checkpoint = None if c is None else _checkpoint(c, f"{where} checkpoint")
        if checkpoint is not None and rows and checkpoint.step != history["step"][-1]:
            raise _malformed(where, f"the checkpoint at the last committed step {history['step'][-1]}",
                             f"step {checkpoint.step}")
        initial = _read_network(_group(params, "initial", where), f"{where} initial network") if "initial" in params else None
        final = None
        if stored_status in FINISHED:
            final = _read_network(_group(params, "final", where), f"{where} final network")
    status, message = attrs["status"], attrs.get("message", "")
    if status == "running":
        owner = _lock_owner(path.with_name(path.name + ".lock"))
        if owner is None or owner.get("run", run_id) != run_id:
            status = "interrupted"
            message = (f"writer {attrs.get('writer', '?')} stopped without closing the run (killed or "
                       "crashed); the history holds the steps up to its last flush")
    return RunRecord(path, run_id, spec, status, message, attrs, history, initial, final, checkpoint, plugins)


def resume(path, run_id: str, progress: bool = False, *, plugins: Registry | None = None,
           flush_steps: int = 50, flush_seconds: float = 5.0) -> RunResult:
    """Continue an interrupted or failed run from its checkpoint, appending to the same history.

    Returns tcnet.run's result for the continuation (its in-memory history holds the new steps
    only; `read_run` gives the whole). Exactness is the optimizer's: Adam/SGD continue bitwise,
    L-BFGS restarts its curvature memory (see tcnet/optim.py).
    """
    plugins = plugins or default_registry()
    record = read_run(path, run_id, plugins=plugins)
    if record.status not in ("interrupted", "failed"):
        raise StoreError(f"{record.path}: run {run_id!r} cannot be resumed (expected status interrupted "
                         f"or failed, found {record.status})")
    if record.checkpoint is None:
        raise StoreError(f"{record.path}: run {run_id!r} has no checkpoint (it stopped before its first "
                         "flush); start it again")
    writer = RunWriter(path, run_id, flush_steps=flush_steps, flush_seconds=flush_seconds,
                       resume_from=record.checkpoint.step)
    return run(record.spec, recorders=[writer], progress=progress, plugins=plugins,
               dynamics=record.initial, resume=record.checkpoint)
