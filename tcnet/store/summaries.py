"""A run's final summary, stored with it: computed once, when the run is written, read by every table.

A run that ends with a final network keeps `final.summary()` (name -> float) as its JSON attribute
`summary` (docs/FORMAT.md), written with its closing attributes. Tables of runs (`tcnet compare`,
`tcnet.open(f).runs`, study tables) read it rather than rebuilding every final network and
recomputing its summary (for linear_decay an eigendecomposition each, on every BLAS thread).

A run written before summaries were stored is summarized once, the first time a table reads it,
under the run's thread policy (`tcnet.threads.auto_threads`: one BLAS thread unless the environment
sets it); the summary is then written into the file where it can be (its writer lock is free and
the file writable), else kept in memory for this process.
"""
import json
import os
import warnings
from pathlib import Path

import h5py
from threadpoolctl import threadpool_limits

from tcnet.status import ENDED
from tcnet.store.errors import StoreError
from tcnet.store.hdf5 import set_attrs, writing
from tcnet.store.locks import WriteLock, this_writer
from tcnet.threads import auto_threads

SUMMARY = "summary"
TABLE = "table"  # an ended run's row of every table of runs (its metrics), JSON: read with one attribute
_memory: dict[tuple, dict] = {}  # (file, run, ended) -> summary, for files tcnet may not write


def summarize(final) -> dict[str, float]:
    """`final.summary()` as floats, computed with the BLAS threads of a run (`auto_threads`)."""
    with threadpool_limits(auto_threads(), user_api="blas"):
        return {k: float(v) for k, v in final.summary().items()}


def encode(summary: dict) -> str:
    """The attribute's text: a JSON object (inf and nan as JSON's Infinity and NaN, as Python writes them)."""
    return json.dumps(summary)


def metrics_row(last: dict, steps: int, attrs) -> dict:
    """A run's metrics in the table syntax (`tcnet.store.tables`): loss, terms/<label>, steps,
    evaluations, wall_time, summary/<key>, from `last` (history column -> its last value; None
    for a run without steps), the step count and the run's attributes (evaluations, summary)."""
    value = (lambda key: float(last[key])) if steps else (lambda key: None)
    row = {"loss": value("loss")}
    row.update({k: value(k) for k in last if k.startswith("terms/")})
    row["steps"] = int(last["step"]) if steps else None
    row["evaluations"] = None if "evaluations" not in attrs else int(attrs["evaluations"])
    row["wall_time"] = value("wall_time")
    summary = _parse(attrs.get(SUMMARY), "?", "?")
    row.update({f"summary/{k}": v for k, v in (summary or {}).items()})
    return row


def table_attr(g) -> dict:
    """The attribute `table` of the ended run group `g`, from what it holds on disk: its status,
    spec and `metrics_row`, written with its closing attributes so that a table reads one attribute
    per run."""
    h, rows = g["history"], int(g.attrs["rows"])
    columns = {name: h[name] for name in h if isinstance(h[name], h5py.Dataset)}
    columns.update({f"terms/{k}": ds for k, ds in h["terms"].items()})
    last = {k: (ds[rows - 1] if rows else None) for k, ds in columns.items()}
    attrs = {k: g.attrs[k] for k in ("evaluations", SUMMARY) if k in g.attrs}
    status, config = (g.attrs[k].decode() if isinstance(g.attrs[k], bytes) else g.attrs[k] for k in ("status", "config"))
    return {TABLE: json.dumps({"status": status, "spec": json.loads(config),
                               "metrics": metrics_row(last, rows, attrs)})}


def stored_row(g) -> dict | None:
    """{"status", "spec", "metrics"} of an ended run group `g` as its attribute `table` holds them;
    None where it has none or it is not of that form (the run is then read in full, and checked)."""
    text = g.attrs.get(TABLE)
    try:
        row = None if text is None else json.loads(text)
    except ValueError:
        return None
    if not isinstance(row, dict) or row.get("status") not in ENDED or not isinstance(row.get("spec"), dict) \
            or not isinstance(row.get("metrics"), dict):
        return None
    return row


def _parse(text, path, run_id) -> dict | None:
    if text is None:
        return None
    if isinstance(text, bytes):
        text = text.decode()
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    if not isinstance(value, dict) or not all(isinstance(v, (int, float)) for v in value.values()):
        raise StoreError(f"{path}: run {run_id!r}: malformed attribute 'summary' (expected a JSON object "
                         f"of numbers, found {str(text)[:80]!r})")
    return {k: float(v) for k, v in value.items()}


def stored_summary(rec) -> dict | None:
    """The summary a run record holds (its attribute, or this process's memory of an older run),
    None where it has none."""
    text = rec.attrs.get(SUMMARY)
    if text is None:
        return _memory.get(_key(rec))
    return _parse(text, rec.path, rec.run_id)


def fill_summaries(records, plugins) -> None:
    """Summarize the ended runs among `records` (read without networks) that have no stored summary
    and whose dynamics `plugins` registers, once: each final network is read and summarized, and
    the summaries are written into their file where possible, else remembered (module docstring)."""
    from tcnet.store.runs import read_run

    todo: dict[Path, list] = {}
    for rec in records:
        if rec.status in ENDED and stored_summary(rec) is None \
                and rec.spec.get("dynamics", {}).get("name") in plugins.entries["dynamics"]:
            full = read_run(rec.path, rec.run_id, plugins=plugins)
            if full.final_data is not None and full.final_data.dynamics in plugins.entries["dynamics"]:
                todo.setdefault(Path(rec.path), []).append((rec, summarize(full.final)))
    for path, found in todo.items():
        for rec, summary in found:
            _memory[_key(rec)] = summary
        if _write(path, {rec.run_id: encode(summary) for rec, summary in found}):
            for rec, summary in found:
                rec.attrs[SUMMARY] = encode(summary)


def _key(rec) -> tuple:
    return str(Path(rec.path).resolve()), rec.run_id, rec.attrs.get("ended")


def _write(path: Path, texts: dict[str, str]) -> bool:
    """Write the summaries `texts` (run id -> JSON) as attributes of their runs, under the file's
    writer lock; False (nothing written) where the lock is held or the file is not writable."""
    if not os.access(path, os.W_OK):
        return False
    lock = WriteLock(path)
    try:
        lock.acquire(this_writer())
    except (StoreError, OSError):
        return False
    try:
        with writing(path, reserve=sum(len(t) for t in texts.values())) as f:
            for run_id, text in texts.items():
                g = f["runs"][run_id]
                if SUMMARY not in g.attrs:
                    set_attrs(g, **{SUMMARY: text})
        return True
    except (StoreError, OSError) as err:
        warnings.warn(f"{path}: summaries of older runs kept in memory only ({err})", stacklevel=3)
        return False
    finally:
        lock.release()
