"""The run recorder: `RunWriter` receives a run from `tcnet.run` step by step (or as whole columns
from a study's worker), buffers the steps, and commits them to /runs/<id> every few steps or
seconds under the file's writer lock, so that a killed process loses at most the steps since its
last flush. How a commit is laid out on disk is `tcnet.store.commit`."""
import json
import time
import warnings
from contextlib import contextmanager
from pathlib import Path

import h5py
import numpy as np

from tcnet.dynamics import Dynamics
from tcnet.optim import Checkpoint
from tcnet.spec import RunSpec
from tcnet.status import Status, ended_status
from tcnet.store.commit import commit, growth, history_columns, link_run, new_run, next_run_id, reopen_run, utc_now
from tcnet.store.errors import DiskFullError, FileBusyError, StoreError, one_line
from tcnet.store.format import CHUNK, HISTORY_COLUMNS, h5name
from tcnet.store.hdf5 import FINAL_WAIT, FLUSH_WAIT, index_group, set_attrs, writing
from tcnet.store.holders import holders
from tcnet.store.locks import WriteLock, this_writer
from tcnet.store.summaries import SUMMARY, encode, summarize, table_attr
from tcnet.store.trees import nbytes
from tcnet.validate import ConfigError, integer, positive


BUSY_RETRY = 10.0
"""Seconds a writer waits before it tries again to flush into a file another process holds open
(a reader: a notebook's h5py.File), at least; its steps stay in memory meanwhile. Each try waits
FLUSH_WAIT for the reader, so a reader that stays costs the run at most FLUSH_WAIT / BUSY_RETRY of
its time (5 %), not FLUSH_WAIT per step."""


class RunWriter:
    """Recorder for `tcnet.run` that writes the run to /runs/<run_id> of an HDF5 file.

    `run_id` defaults to the next free 'run-NNNN'. Steps are appended every `flush_steps` steps or
    `flush_seconds` seconds, whichever comes first (checked at each step), with the checkpoint of
    the last appended step. `resume_from=k` continues the existing run `run_id` after its
    checkpoint step k (see `tcnet.resume`).

    Each flush commits in two phases so that a kill at any moment leaves a consistent run
    (`tcnet.store.commit`). Before each commit it is checked that the file can grow by what it
    needs (`tcnet.store.hdf5.writing`): a full disk raises DiskFullError before anything is
    written, naming what is intact and how to resume; the run is left interrupted at its last
    committed checkpoint.
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
        self._lock = WriteLock(self.path)
        self._buffer: list = []
        self._flushed_at = 0.0
        self._retry_at = 0.0  # while the file is held by another process: no flush before this time
        self._warned = False
        self._committed = resume_from  # step of the last committed checkpoint
        self._keys: set = set()  # terms and extra keys of the steps so far (their columns grow)
        self._code: dict = {}  # the digests of the run's plugin code (`provenance`)
        self._notes: dict = {}  # what the caller says about the run's inputs (`note`)

    def provenance(self, code: dict) -> None:
        """Record `code` ({source file: digest}, tcnet.provenance) with a new run, as its attribute
        `code`; called before `start`. A resumed run keeps the code it was started with."""
        self._code = dict(code)

    def note(self, **notes) -> None:
        """Record `notes` (JSON-serializable values by name: what a plugin read to make the run's
        data, say) with a new run, as its JSON attribute `notes`; called before `start`."""
        try:
            json.dumps(notes)
        except TypeError as err:
            raise ConfigError(f"RunWriter: notes must be JSON-serializable ({err})") from None
        self._notes.update(notes)

    # Recorder protocol
    def start(self, spec: RunSpec, dynamics: Dynamics | None) -> None:
        """Create the run (or reopen it to resume). `dynamics` None records a run whose network
        could not be created: it has no params/initial, and `fail` follows with the reason."""
        if self.run_id is not None:
            h5name(self.run_id, "run", self.path)
        self._lock.acquire(this_writer(self.run_id))
        try:
            initial = 0 if dynamics is None else nbytes(dynamics.arrays) + nbytes(dynamics.data)
            with self._writing(FINAL_WAIT, initial + 8 * CHUNK * (len(HISTORY_COLUMNS) + len(spec.loss))) as f:
                runs = index_group(f, "runs")
                if self.resume_from is None:
                    if self.run_id is None:
                        self.run_id = next_run_id(runs)
                    link_run(runs, self.run_id, self._new_run(f, runs, spec, dynamics))
                else:
                    reopen_run(runs, self.run_id, self.resume_from, self.path)
            self._lock.describe(this_writer(self.run_id))
        except BaseException:
            self._lock.release()
            raise
        self._buffer.clear()
        self._flushed_at = time.monotonic()

    def step(self, step) -> None:
        self._buffer.append(step)
        self._keys.update(step.terms, step.extra)
        now = time.monotonic()
        due = len(self._buffer) >= self.flush_steps or now - self._flushed_at >= self.flush_seconds
        if due and now >= self._retry_at:
            self.flush(wait=FLUSH_WAIT, must=False)

    def finish(self, result, final: Dynamics) -> None:
        try:
            attrs = {**_finished(result), **_summary(final)}
            with self._writing(FINAL_WAIT, self._growth() + nbytes(final.arrays)) as f:
                self._commit(f, final=final, attrs=attrs)
                set_attrs(f["runs"][self.run_id], **table_attr(f["runs"][self.run_id]))
        finally:
            self._lock.release()

    def fail(self, error: BaseException | str) -> None:
        """Record the steps so far and mark the run interrupted (KeyboardInterrupt, a full disk)
        or failed; `error` is the exception, or the message to record ("<ErrorType>: <text>").
        After a full disk the buffered steps are dropped; if even the status cannot be written,
        the run still reads as interrupted (its writer is gone)."""
        attrs = _failed(error)
        if isinstance(error, DiskFullError):
            self._buffer = []
        try:
            with self._writing(FINAL_WAIT, self._growth()) as f:
                self._commit(f, attrs=attrs)
        except DiskFullError:
            pass
        except Exception as err:  # the optimizer's error is re-raised by tcnet.run; do not mask it
            warnings.warn(f"{self.path}: could not record that run {self.run_id!r} {attrs['status']}: {err}",
                          stacklevel=2)
        finally:
            self._lock.release()
        if isinstance(error, KeyboardInterrupt):
            error.add_note(self.resume_hint())

    def record(self, spec: RunSpec, dynamics: Dynamics | None, columns: dict | None,
               checkpoint: Checkpoint | None, *, result=None, final: Dynamics | None = None,
               error: BaseException | str | None = None) -> None:
        """Write a whole run computed elsewhere (a study's worker) in one go: its spec and initial
        network (`dynamics`, None if it could not be created), history `columns` (named as
        `history_columns` names them, of equal length, with every column of HISTORY_COLUMNS; None
        for none) with the `checkpoint` of their last row, and its end: the optimizer's `result`
        with the `final` network, or the `error` it failed with (as `fail` takes it). The run is
        built unlinked and linked into /runs once it is all on disk (`tcnet.store.commit.link_run`),
        so a writer killed meanwhile leaves no part of it for readers: it reads as never written."""
        if columns is not None:
            missing = [k for k in HISTORY_COLUMNS if k not in columns]
            lengths = {len(v) for v in columns.values()}
            if missing or len(lengths) != 1:
                raise StoreError(f"{self.path}: run {self.run_id!r}: history columns must include "
                                 f"{', '.join(HISTORY_COLUMNS)} and have equal lengths (missing {missing}, "
                                 f"lengths {sorted(lengths)})")
        if self.run_id is not None:
            h5name(self.run_id, "run", self.path)
        attrs = _finished(result) if error is None else _failed(error)
        if final is not None:
            attrs.update(_summary(final))
        reserve = sum(nbytes(d.arrays) + nbytes(d.data) for d in (dynamics, final) if d is not None)
        if columns is not None:
            reserve += growth(len(columns["step"]), len(columns), checkpoint)
        self._lock.acquire(this_writer(self.run_id))
        try:
            with self._writing(FINAL_WAIT, reserve + 8 * CHUNK * (len(HISTORY_COLUMNS) + len(spec.loss))) as f:
                runs = index_group(f, "runs")
                if self.run_id is None:
                    self.run_id = next_run_id(runs)
                g = self._new_run(f, runs, spec, dynamics)
                commit(g, self.path, self.run_id, columns, checkpoint, final, attrs)
                if final is not None:
                    set_attrs(g, **table_attr(g))
                link_run(runs, self.run_id, g)
        finally:
            self._lock.release()
        if columns is not None:
            self._committed = int(checkpoint.step)

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
            retry = max(self.flush_seconds, BUSY_RETRY)
            self._retry_at = time.monotonic() + retry
            if not self._warned:  # once per run: the reader may stay for the whole run
                readers = ", ".join(holders(self.path)) or "another process"
                warnings.warn(f"{self.path} is held open by {readers}: run {self.run_id} keeps its steps in memory "
                              f"and tries to flush them every {retry:g} s until it is closed (and at the end of "
                              f"the run, waiting up to {FINAL_WAIT:g} s)", stacklevel=2)
                self._warned = True
            return
        self._flushed_at = time.monotonic()

    # writing
    @contextmanager
    def _writing(self, wait: float | None, reserve: int):
        """The file open to write, checked to be able to grow by `reserve` bytes; a full disk is a
        DiskFullError in one line saying what is intact and how to go on."""
        try:
            with writing(self.path, wait, reserve) as f:
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

    def _new_run(self, f: h5py.File, runs: h5py.Group, spec: RunSpec, dynamics: Dynamics | None) -> h5py.Group:
        """The unlinked group of this new run (`new_run`), with the digests of its code (`provenance`)
        and its `notes`."""
        g = new_run(f, runs, self.run_id, spec, dynamics, self.path)
        if self._code:
            set_attrs(g, code=json.dumps(self._code, sort_keys=True))
        if self._notes:
            set_attrs(g, notes=json.dumps(self._notes, sort_keys=True))
        return g

    def _growth(self) -> int:
        """Bytes a commit of the buffered steps can add to the file at most (see `growth`)."""
        if not self._buffer:
            return 0
        return growth(len(self._buffer), len(HISTORY_COLUMNS) + len(self._keys), Checkpoint.at(self._buffer[-1]))

    def _commit(self, f: h5py.File, columns: dict | None = None, checkpoint: Checkpoint | None = None,
                final: Dynamics | None = None, attrs: dict | None = None) -> None:
        """Commit history `columns` and their `checkpoint` (default: those of the buffered steps),
        the final network and the closing attributes (`tcnet.store.commit.commit`)."""
        if columns is None and self._buffer:
            columns, checkpoint = history_columns(self._buffer), Checkpoint.at(self._buffer[-1])
        commit(f["runs"][self.run_id], self.path, self.run_id, columns, checkpoint, final, attrs)
        if columns:
            self._committed = int(checkpoint.step)
        self._buffer = []


def _finished(result) -> dict:
    """The closing attributes of a run whose optimizer returned `result` (docs/FORMAT.md)."""
    return dict(status=ended_status(result.status), message=result.message, optimizer_status=result.status,
                evaluations=np.int64(result.evaluations), ended=utc_now())


def _summary(final: Dynamics) -> dict:
    """The attribute `summary` of a run ending with network `final` (tcnet.store.summaries); none
    where its summary() raises, which a table then reports when it summarizes the run itself."""
    try:
        return {SUMMARY: encode(summarize(final))}
    except Exception as err:  # a plugin's summary() must not lose the run it summarizes
        warnings.warn(f"{type(final).__name__}.summary() failed, the run is stored without it: {err}", stacklevel=3)
        return {}


def _failed(error: BaseException | str) -> dict:
    """The closing attributes of a run that ended with `error` (an exception, or the message to
    record): interrupted by KeyboardInterrupt or a full disk, else failed."""
    full = isinstance(error, DiskFullError)
    status = Status.INTERRUPTED if full or isinstance(error, KeyboardInterrupt) else Status.FAILED
    if isinstance(error, str):
        text = one_line(error)
    else:
        text = one_line(f"{type(error).__name__}: {error}" if str(error) else type(error).__name__)
    return dict(status=status, message=text, ended=utc_now())
