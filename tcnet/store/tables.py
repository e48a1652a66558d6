"""Comparing runs: one table row per run (the spec keys that differ, final loss and terms, the final
network's summary), repeats that differ only in a seed pooled, and the table as CSV.

One column syntax for every table of runs (`tcnet compare`, study tables, `tcnet.open`): a metric
is named as the store names it, `loss`, `terms/<label>` (a history column), `steps`,
`evaluations`, `wall_time`, `summary/<key>` (the final network's summary()); a pooled metric is
`<metric>:mean` and `<metric>:std`, and a pool counts its runs (`n`) and, by their status words
(`tcnet.status`), its `finished` and `failed` runs.
"""
import csv
import inspect
import io
import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tcnet.plugins import Registry, registry as default_registry
from tcnet.status import Status
from tcnet.store.hdf5 import reading
from tcnet.store.runs import check_spec, list_runs, read_run
from tcnet.store.summaries import SUMMARY, encode, fill_summaries, metrics_row, stored_row, stored_summary


def flatten_spec(spec: dict) -> dict:
    """Dotted keys of a run spec; loss terms are keyed by their label (default: name), e.g.
    'dynamics.N', 'loss.stability.weight', 'optimizer.stages.1.max_iter'."""
    out = {}

    def walk(prefix, value):
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}.{k}", v)
        elif isinstance(value, list) and value:
            for i, v in enumerate(value):
                walk(f"{prefix}.{i}", v)
        else:
            out[prefix] = value

    walk("dynamics", spec.get("dynamics", {}))
    for term in spec.get("loss", []):
        walk(f"loss.{term.get('label') or term.get('name')}", {k: v for k, v in term.items() if k != "label"})
    walk("optimizer", spec.get("optimizer", {}))
    return out


def run_metrics(rec) -> dict:
    """The final numbers of a stored run in the table syntax (module docstring): loss and
    terms/<label> (last step), steps (last step number), evaluations (over every session of a
    resumed run), wall_time, and summary/<key> of the final network as stored with the run
    (`tcnet.store.summaries`; an older run's once `fill_summaries` has summarized it); None where
    the run has none (no steps, no final network)."""
    h = rec.history
    last = {k: (v[-1] if rec.steps else None) for k, v in h.items()}
    summary = stored_summary(rec)
    attrs = {**rec.attrs, **({SUMMARY: encode(summary)} if summary is not None else {})}
    return metrics_row(last, rec.steps, attrs)


class MissingPluginWarning(UserWarning):
    """A file holds runs of a dynamics that no loaded plugin registers: their networks cannot be
    built, so their summaries and simulations cannot be shown."""


def warn_missing_plugins(records, plugins: Registry) -> None:
    """One MissingPluginWarning per dynamics that runs of `records` name and `plugins` lacks,
    naming it, the plugin file(s) its runs recorded (the run attribute `code`) and what cannot be
    shown."""
    from tcnet.provenance import recorded_code

    missing: dict[str, list] = {}
    for rec in records:
        name = rec.spec.get("dynamics", {}).get("name")
        if name is not None and name not in plugins.entries["dynamics"]:
            missing.setdefault(name, []).append(rec)
    if not missing:
        return
    have = set()
    for e in plugins.all():
        try:
            have.add(inspect.getsourcefile(e.cls))
        except TypeError:
            continue
    for name, recs in missing.items():
        files = sorted({f for r in recs for f in recorded_code(r.attrs) if f not in have})
        written = f"written with {', '.join(files)}" if files else "its plugin not recorded"
        paths = ", ".join(sorted({str(r.path) for r in recs}))
        lost = ("their summary/<key> columns are empty and their networks cannot be loaded or simulated"
                if any(stored_summary(r) is None for r in recs) else
                "their networks cannot be loaded or simulated (the summaries stored with them are shown)")
        warnings.warn(f"{paths}: dynamics {name!r} of {len(recs)} run(s) is not registered ({written}): "
                      f"{lost}; load the plugin "
                      "(tcnet --plugin FILE, or tcnet.open(path, plugins=tcnet.plugins.registry([FILE])))",
                      MissingPluginWarning, stacklevel=3)


@dataclass
class TableRecord:
    """What a table of runs needs of one run: where it is, its spec, status and attributes, and
    `metrics`, its row as its attribute `table` holds it (an ended run written by this version),
    else None and the `RunRecord` (read without networks) to compute it from."""

    path: Path
    run_id: str
    spec: dict
    status: str
    attrs: dict
    metrics: dict | None = None
    record: object = None

    def __getattr__(self, name):  # history, steps, ... of the record it was read from
        if name == "record" or self.record is None:
            raise AttributeError(name)
        return getattr(self.record, name)


def table_records(path, plugins: Registry) -> list[TableRecord]:
    """The runs of one file as tables read them: an ended run that holds its row (`table`: status,
    spec, metrics) costs one attribute, read in one opening of the file; any other is read by
    `read_run` without its networks."""
    path = Path(path)
    ids, out = list_runs(path), []
    with reading(path) as f:
        runs = f["runs"] if ids else {}
        for run_id in ids:
            g = runs[run_id]
            row = stored_row(g)
            if row is None:
                out.append(None)
                continue
            spec = check_spec(row["spec"], f"{path}: run {run_id!r}")
            name = spec.get("dynamics", {}).get("name")
            attrs = {"code": g.attrs.get("code", "{}")} if name not in plugins.entries["dynamics"] else {}
            summary = {k[8:]: v for k, v in row["metrics"].items() if k.startswith("summary/")}
            attrs[SUMMARY] = encode(summary) if summary else None
            out.append(TableRecord(path, run_id, spec, row["status"], attrs, row["metrics"]))
    full = iter([read_run(path, r, plugins=plugins, networks=False) for r, rec in zip(ids, out) if rec is None])
    return [rec if rec is not None else _wrap(next(full)) for rec in out]


def _wrap(rec) -> TableRecord:
    return TableRecord(rec.path, rec.run_id, rec.spec, rec.status, rec.attrs, None, rec)


def compare_table(paths, *, plugins: Registry | None = None) -> list[dict]:
    """One row per run of the given files: file, run, status, the spec keys whose values differ
    between the runs, then `run_metrics`. Every row has every column (None if absent)."""
    plugins = plugins or default_registry()
    records = [rec for p in paths for rec in table_records(p, plugins)]
    warn_missing_plugins(records, plugins)
    fill_summaries([r for r in records if r.metrics is None], plugins)
    flat = [flatten_spec(r.spec) for r in records]
    keys = list(dict.fromkeys(k for f in flat for k in f))
    missing = object()
    differ = [k for k in keys if len({json.dumps(f.get(k, missing), sort_keys=True, default=str) for f in flat}) > 1]
    rows = []
    for rec, spec in zip(records, flat):
        row = {"file": str(rec.path), "run": rec.run_id, "status": rec.status}
        row.update({k: spec.get(k) for k in differ})
        row.update(rec.metrics if rec.metrics is not None else run_metrics(rec))
        rows.append(row)
    columns = list(dict.fromkeys(k for row in rows for k in row))
    return [{c: row.get(c) for c in columns} for row in rows]


def _is_spec_key(column: str) -> bool:
    return "." in column and column.split(".")[0] in ("dynamics", "loss", "optimizer")


def group_rows(rows: list[dict]) -> list[dict]:
    """Repeats pooled: rows of `compare_table` that differ only in a seed (a spec key ending in
    '.seed') form one group, keyed by the other differing spec keys. Each group gives n (runs),
    finished and failed (runs with that status), and for every numeric column its mean and sample
    standard deviation over the group's runs that have it ('<column>:mean', '<column>:std'; None
    without values, and std None for one value)."""
    if not rows:
        return []
    fixed = {"file", "run", "status"}
    spec_keys = [c for c in rows[0] if _is_spec_key(c)]
    group_keys = [c for c in spec_keys if not c.endswith(".seed")]
    metrics = [c for c in rows[0] if c not in fixed and c not in spec_keys
               and any(isinstance(r[c], (int, float)) and not isinstance(r[c], bool) for r in rows)]
    groups: dict[str, list[dict]] = {}
    for row in rows:
        groups.setdefault(json.dumps([row[k] for k in group_keys], default=str), []).append(row)
    out = []
    for members in groups.values():
        g = {k: members[0][k] for k in group_keys}
        g["n"] = len(members)
        g[Status.FINISHED.value] = sum(m["status"] == Status.FINISHED for m in members)
        g[Status.FAILED.value] = sum(m["status"] == Status.FAILED for m in members)
        for c in metrics:
            values = np.array([m[c] for m in members if m[c] is not None], dtype=float)
            g[f"{c}:mean"] = float(values.mean()) if values.size else None
            g[f"{c}:std"] = float(values.std(ddof=1)) if values.size > 1 else None
        out.append(g)
    return out


def table_csv(rows: list[dict]) -> str:
    """The rows of compare_table as CSV text (full float precision)."""
    buf = io.StringIO()
    if rows:
        w = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
        w.writeheader()
        w.writerows({k: ("" if v is None else v) for k, v in row.items()} for row in rows)
    return buf.getvalue()
