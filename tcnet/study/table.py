"""The summary table of a study: one row per point, repeats pooled by tcnet.store.group_rows."""
import json
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tcnet.labels import Labels
from tcnet.status import ENDED, Status
from tcnet.study.spec import canonical

if TYPE_CHECKING:  # for the annotation only: tcnet.study.core imports this module
    from tcnet.study.core import Study


COUNTS = ("n", Status.FINISHED.value, Status.FAILED.value)
"""The count columns of a row, named as `tcnet.store.group_rows` names them."""


def _nan(value) -> float:
    """A pooled value of group_rows as a float: None (no values, or a std of one value) is nan."""
    return math.nan if value is None else value


@dataclass
class Table:
    """One row per study point: the swept keys' values, n (runs that ran to their end: finished,
    non-finite or diverged), finished and failed (runs with that status), and '<metric>:mean' and
    '<metric>:std' over the n runs of every metric of `tcnet.store.run_metrics` (loss,
    terms/<label>, steps, evaluations, wall_time, summary/<key>): the column names and status
    words of `tcnet compare`. The repeats are pooled by `tcnet.store.group_rows`, as `tcnet
    compare --group` pools them; a std of one run is nan.
    `labels`: the study dynamics' declaration of labels, units and headline metrics; `statuses`: the
    stored status of every run of the study the file holds (its best attempt), for the exit status
    of the commands (`tcnet.study.exit_code`)."""

    keys: list
    metrics: list
    rows: list
    labels: Labels = Labels()
    statuses: tuple = ()

    @classmethod
    def build(cls, study: "Study", records: dict) -> "Table":
        """The table of `records` (planned run id -> the stored record of its best attempt)."""
        from tcnet.store import fill_summaries, group_rows, run_metrics, warn_missing_plugins

        stored = [rec for rec in records.values() if rec is not None]
        if stored:
            warn_missing_plugins(stored, stored[0].plugins)
            fill_summaries(stored, stored[0].plugins)
        points: dict[str, tuple[dict, list]] = {}
        for p in study.runs():
            points.setdefault(canonical(p.overrides), (p.overrides, []))[1].append(records.get(p.run_id))
        done = {key: [(rec, run_metrics(rec)) for rec in recs if rec is not None and rec.status in ENDED]
                for key, (_, recs) in points.items()}
        metrics = list(dict.fromkeys(k for runs in done.values() for _, m in runs for k in m))
        rows = []
        for key, (point, recs) in points.items():
            # the plan says which runs repeat this point: they go to group_rows as one group
            pooled = group_rows([{"run": rec.run_id, "status": rec.status, **{k: m.get(k) for k in metrics}}
                                 for rec, m in done[key]])
            group = pooled[0] if pooled else {"n": 0, Status.FINISHED.value: 0}
            row = {k: point.get(k) for k in study.swept}
            row["n"] = group["n"]
            row[Status.FINISHED.value] = group[Status.FINISHED.value]
            row[Status.FAILED.value] = sum(rec is not None and rec.status == Status.FAILED for rec in recs)
            for k in metrics:
                row[f"{k}:mean"], row[f"{k}:std"] = _nan(group.get(f"{k}:mean")), _nan(group.get(f"{k}:std"))
            rows.append(row)
        statuses = tuple(rec.status for rec in records.values() if rec is not None)
        return cls(list(study.swept), metrics, rows, _labels(study, records.values()), statuses)

    @property
    def columns(self) -> list[str]:
        return [*self.keys, *COUNTS, *(f"{m}:{s}" for m in self.metrics for s in ("mean", "std"))]

    def frame(self):
        """The table as a pandas DataFrame indexed by the swept keys (the columns of `to_csv`)."""
        import pandas as pd

        df = pd.DataFrame(self.rows, columns=self.columns)
        return df.set_index(self.keys) if self.keys else df

    def to_csv(self, f) -> None:
        import csv

        w = csv.writer(f)
        w.writerow(self.columns)
        for row in self.rows:
            w.writerow([_csv_value(row[c]) for c in self.columns])

    def format(self, metrics=None) -> str:
        """A plain-text table of mean ± std for `metrics` (default: loss, terms and the headline
        summary metrics the dynamics declares)."""
        headline = [f"summary/{k}" for k in self.labels.headline]
        metrics = metrics or [m for m in self.metrics if m == "loss" or m.startswith("terms/") or m in headline]
        head = [*self.keys, *COUNTS, *metrics]
        lines = [[*(json.dumps(r[k]) for k in self.keys), *(str(r[c]) for c in COUNTS),
                  *(f"{r[m + ':mean']:.4g} ± {r[m + ':std']:.2g}" for m in metrics)] for r in self.rows]
        widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(head)]
        fmt = "  ".join(f"{{:<{w}}}" for w in widths)
        return "\n".join([fmt.format(*head), *(fmt.format(*line) for line in lines)]).rstrip()


def _labels(study: "Study", records) -> Labels:
    """The labels the study's dynamics declares (through a stored record's plugins; none without)."""
    name = study.base["dynamics"]["name"]
    for rec in records:
        if rec is not None and rec.plugins is not None and name in rec.plugins.entries["dynamics"]:
            return rec.plugins.get("dynamics", name).labels
    return Labels()


def _csv_value(v):
    if isinstance(v, float):
        return repr(v)
    return v if isinstance(v, (int, str)) else json.dumps(v)
