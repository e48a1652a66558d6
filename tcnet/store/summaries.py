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

from threadpoolctl import threadpool_limits

from tcnet.status import ENDED
from tcnet.store.errors import StoreError
from tcnet.store.hdf5 import set_attrs, writing
from tcnet.store.locks import WriteLock, this_writer
from tcnet.threads import auto_threads

SUMMARY = "summary"
_memory: dict[tuple, dict] = {}  # (file, run, ended) -> summary, for files tcnet may not write


def summarize(final) -> dict[str, float]:
    """`final.summary()` as floats, computed with the BLAS threads of a run (`auto_threads`)."""
    with threadpool_limits(auto_threads(), user_api="blas"):
        return {k: float(v) for k, v in final.summary().items()}


def encode(summary: dict) -> str:
    """The attribute's text: a JSON object (inf and nan as JSON's Infinity and NaN, as Python writes them)."""
    return json.dumps(summary)


def stored_summary(rec) -> dict | None:
    """The summary a run record holds (its attribute, or this process's memory of an older run),
    None where it has none."""
    text = rec.attrs.get(SUMMARY)
    if text is None:
        return _memory.get(_key(rec))
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    if not isinstance(value, dict) or not all(isinstance(v, (int, float)) for v in value.values()):
        raise StoreError(f"{rec.path}: run {rec.run_id!r}: malformed attribute 'summary' (expected a JSON object "
                         f"of numbers, found {str(text)[:80]!r})")
    return {k: float(v) for k, v in value.items()}


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
