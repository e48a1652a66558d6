"""A run on disk (/runs/<id>, docs/FORMAT.md): creating its group, reopening it to resume, and the
two-phase commit that appends to it, so that a kill at any moment leaves a consistent run.

(1) The new history rows go past the committed length `rows`, and the checkpoint goes to the
checkpoint slot (0 or 1) not in use; the file is flushed. (2) The run attributes `rows` and
`checkpoint` (the slot) are modified in place. Readers (tcnet.store.runs) see only the committed
rows and slot. When to commit is the recorder's business (tcnet.store.writer); this module is how.
"""
import json
import os
import socket
from datetime import datetime, timezone
from pathlib import Path

import h5py
import numpy as np

from tcnet.dynamics import Dynamics
from tcnet.optim import Checkpoint
from tcnet.spec import RunSpec
from tcnet.status import RESUMABLE, Status
from tcnet.store.digests import append_rows
from tcnet.store.errors import StoreError
from tcnet.store.format import CHUNK, HISTORY_COLUMNS, as_text, checkpoint_group, h5name, has, keeps_digests
from tcnet.store.hdf5 import create_dataset, set_attrs
from tcnet.store.networks import write_data, write_network
from tcnet.store.trees import nbytes, put, write_tree
from tcnet.version import __version__


def utc_now() -> str:
    """The time now, as the run attributes `started` and `ended` store it."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def history_columns(steps) -> dict:
    """The history columns (numpy arrays) of a list of Steps, named as the store names them:
    step, stage, loss, grad_norm, wall_time, terms/<label>, extra/<key> (NaN where a step lacks it)."""
    history = {k: np.array([getattr(s, k) for s in steps]) for k in HISTORY_COLUMNS}
    for label in dict.fromkeys(k for s in steps for k in s.terms):
        history[f"terms/{label}"] = np.array([s.terms.get(label, np.nan) for s in steps], dtype=float)
    for key in dict.fromkeys(k for s in steps for k in s.extra):
        history[f"extra/{key}"] = np.array([s.extra.get(key, np.nan) for s in steps], dtype=float)
    return history


def growth(rows: int, columns: int, checkpoint: Checkpoint) -> int:
    """Bytes that appending `rows` rows to `columns` history columns, with their checkpoint, can
    add to a file at most: a new chunk per column per CHUNK rows plus one partly filled, and the
    checkpoint twice (its slot may be written for the first time)."""
    checkpoint_bytes = np.asarray(checkpoint.x).nbytes + nbytes(checkpoint.opt_state)
    return 8 * CHUNK * columns * (rows // CHUNK + 2) + 2 * checkpoint_bytes


def _column(group: h5py.Group, name: str, rows: int) -> None:
    """A float64 history column of `rows` NaNs that grows in chunks."""
    create_dataset(group, name, shape=(rows,), maxshape=(None,), dtype="float64", chunks=(CHUNK,), fillvalue=np.nan)


def _history_datasets(h: h5py.Group) -> list:
    return [h[name] for name in HISTORY_COLUMNS] + [h[s][k] for s in ("terms", "extra") for k in h[s]]


def _writer() -> str:
    """The `writer` attribute of a run this process writes: host:pid."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _digest_rows(h: h5py.Group, rows: int, columns: dict, committed: int, slot: int) -> None:
    """Each history column's digest of its `rows` committed rows and the `columns` rows just
    written after them, kept for checkpoint `slot` (tcnet.store.digests), so that phase 2, which
    makes `slot` the committed one, commits the digests with the rows."""
    for name in HISTORY_COLUMNS:
        append_rows(h[name], rows, columns[name], committed, slot)
    for sub in ("terms", "extra"):
        for name, ds in h[sub].items():
            values = np.broadcast_to(columns.get(f"{sub}/{name}", np.nan), (len(columns["step"]),))
            append_rows(ds, rows, values, committed, slot)


def next_run_id(runs: h5py.Group) -> str:
    """The first free id 'run-NNNN' from the number of runs on."""
    n = len(runs) + 1
    while f"run-{n:04d}" in runs:
        n += 1
    return f"run-{n:04d}"


def new_run(f: h5py.File, runs: h5py.Group, run_id: str, spec: RunSpec, dynamics: Dynamics | None,
            path: Path) -> h5py.Group:
    """The group of the new run `run_id`, status "running" with nothing committed, created in `f`
    but not yet linked into `runs` (`link_run` does that once it is on disk), so that a writer
    killed while creating it leaves nothing a reader sees. `dynamics` None: a run whose network
    could not be created has no params/initial."""
    if run_id in runs:
        raise StoreError(f"{path}: run {run_id!r} exists already (choose another run_id, or "
                         "resume it with tcnet.resume)")
    g = f.create_group(None)  # anonymous until linked
    set_attrs(g, config=json.dumps(spec.as_dict(), sort_keys=True), status=Status.RUNNING, message="",
              writer=_writer(), tcnet_version=__version__, started=utc_now(), rows=np.int64(0),
              checkpoint=np.int64(-1))
    params = g.create_group("params")
    if dynamics is not None:  # its data once, for the initial, final and checkpoint networks alike
        write_network(params.create_group("initial", track_order=True), dynamics, path, data=False)
        if dynamics.data:
            write_data(params, dynamics, path)
    h = g.create_group("history")
    for name, dtype in HISTORY_COLUMNS.items():
        create_dataset(h, name, shape=(0,), maxshape=(None,), dtype=dtype, chunks=(CHUNK,))
    terms = h.create_group("terms", track_order=True)
    for label in dict.fromkeys(t.get("label") or t["name"] for t in spec.loss):
        _column(terms, h5name(label, "loss term label", path), 0)
    h.create_group("extra", track_order=True)
    c = g.create_group("checkpoint")
    for slot in ("0", "1"):
        c.create_group(slot)
    return g


def link_run(runs: h5py.Group, run_id: str, g: h5py.Group) -> None:
    """Link the new run `g` (`new_run`) into `runs` as `run_id`, once everything in it is on disk:
    a writer killed before leaves an unlinked group, space no reader visits; one killed after
    leaves the run as written."""
    runs.file.flush()
    runs[run_id] = g


def reopen_run(runs: h5py.Group, run_id: str, resume_from: int, path: Path) -> None:
    """Mark the run `run_id` of `runs` running again, to continue after its checkpoint step
    `resume_from` (which must still be its committed checkpoint); the rows of an uncommitted flush
    are dropped."""
    if not has(runs, run_id):
        raise StoreError(f"{path}: no run {run_id!r} to resume (runs: {', '.join(runs) or 'none'})")
    g = runs[run_id]
    status = as_text(g.attrs.get("status", ""))
    if status not in (Status.RUNNING, *RESUMABLE):
        raise StoreError(f"{path}: run {run_id!r} cannot be resumed (expected status interrupted "
                         f"or failed, found {status})")
    c = checkpoint_group(g)
    found = "none" if c is None else int(c.attrs["step"])
    if found != resume_from:
        raise StoreError(f"{path}: run {run_id!r} checkpoint moved (expected step "
                         f"{resume_from}, found {found})")
    rows = int(g.attrs["rows"])
    for ds in _history_datasets(g["history"]):
        ds.resize((rows,))  # drop rows of an uncommitted flush
    if "table" in g.attrs:  # an ended run's table row (tcnet.store.summaries) no longer holds
        del g.attrs["table"]
    resumed = list(g.attrs.get("resumed_at", [])) + [resume_from]
    set_attrs(g, status=Status.RUNNING, message="", writer=_writer(), resumed_at=np.array(resumed, dtype=np.int64))


def commit(g: h5py.Group, path: Path, run_id: str, columns: dict | None = None,
           checkpoint: Checkpoint | None = None, final: Dynamics | None = None, attrs: dict | None = None) -> None:
    """Append to the run group `g` (of run `run_id`) history `columns` (as `history_columns` names
    them) and the `checkpoint` of their last row, write the `final` network, then set the closing
    `attrs` (status, message, ...), in the two phases of the module docstring."""
    f = g.file
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
                _column(h[sub], h5name(name, f"{sub} key", path), rows)
        for sub in ("terms", "extra"):
            for name, ds in h[sub].items():  # NaN where these rows lack the key
                ds.resize((n,))
                ds[rows:n] = columns.get(f"{sub}/{name}", np.nan)
        committed, slot = slot, (1 - slot if slot >= 0 else 0)
        if keeps_digests(f):
            _digest_rows(h, rows, columns, committed, slot)
        c = g["checkpoint"][str(slot)]
        c.attrs["step"] = np.int64(checkpoint.step)
        c.attrs["elapsed"] = np.float64(checkpoint.elapsed)
        put(c, "x", "array", np.asarray(checkpoint.x, dtype=np.float64))
        # checkpoint/state holds the stage and count beside the optimizer's snapshot (FORMAT.md)
        state = {"stage": checkpoint.stage, "evaluations": checkpoint.evaluations, **checkpoint.opt_state}
        write_tree(c.require_group("state"), state, f"{path}: run {run_id!r}")
    if final is not None:
        if "final" in g["params"]:
            del g["params/final"]
        # beside the run's data (params/data), or, in a run of a version 1 or 2 file (resumed),
        # holding its data itself as the initial network does
        write_network(g["params"].create_group("final", track_order=True), final, path,
                      data="data" not in g["params"])
    f.flush()  # phase 1 is on disk before anything refers to it
    if columns:
        g.attrs.modify("rows", np.int64(n))
        g.attrs.modify("checkpoint", np.int64(slot))
    if attrs:
        f.flush()
        set_attrs(g, **attrs)
