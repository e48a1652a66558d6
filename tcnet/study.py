"""Comparative studies: one base run spec, a grid and/or list of overrides, repeats, many runs.

A study file (TOML)::

    [study]
    name = "preparatory_small"    # prefix of the run ids (default: the file's stem)
    seed = 2017                   # the one seed every run's seed is derived from
    repeats = 3                   # runs per grid point, with different seeds
    plugins = []                  # single-file plugins (paths relative to the study file)

    [base.dynamics]               # the base run spec, exactly as for one run (see tcnet.run)
    name = "linear_decay"
    [[base.loss]]
    name = "decay"
    [base.optimizer]
    name = "adam"

    [grid]                        # cartesian product over dotted keys
    "dynamics.N" = [100, 200]
    "loss.smoothness.weight" = [0.01, 0.1]

    [[overrides]]                 # explicit points, each combined with every grid point
    "optimizer.lr" = 0.01

Dotted keys address the run spec: ``dynamics.<key>`` a dynamics setting, ``loss.<label>.<key>`` a
setting (or ``weight``) of the loss term with that label (a term's label defaults to its name),
``optimizer.<key>`` an optimizer setting; further parts walk into nested tables, and integers
index lists (``optimizer.stages.1.max_iter``). Unquoted TOML dotted keys (nested tables) mean the
same. The points of a study are every grid combination merged with every override (just the grid
without overrides, just the overrides without a grid, the base alone with neither).

Seeds. A run's key is the canonical JSON of its overrides and repeat index; its dynamics seed is
the first 4 bytes (little-endian) of sha256("<study seed>:<key>"). So the same run always gets the
same seed, whatever the order or the executor, and adding grid values leaves the other runs'
seeds alone. ``dynamics.seed`` cannot be swept (use repeats). A run's id is the study name plus a
hash of its complete spec (seed included): editing the base spec gives new ids, never a stale match.

Execution. Every run is an independent task `execute_run(spec_json, plugin_files)` that returns
plain data (numpy arrays, strings, numbers). Tasks go to a local process pool ('spawn', one BLAS
thread per worker) or to a dask.distributed Client; only this driver process writes the HDF5 file,
one finished run at a time. A rerun skips runs the file holds as done (or failed, unless
``retry_failed``) and redoes the rest, including runs a killed driver left unfinished. A run that
raises is recorded as failed with its error; the study goes on. So is a run whose network cannot
even be created (e.g. a grid value the dynamics rejects): it is stored without an initial network
(docs/FORMAT.md), its spec says what was asked for.
"""
import concurrent.futures
import contextlib
import hashlib
import itertools
import json
import math
import multiprocessing
import os
import socket
import sys
import threading
import time
import tomllib
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from tcnet.run import RunSpec
from tcnet.validate import ConfigError, integer, no_extra

STUDY_KEYS = ("name", "seed", "repeats", "plugins")
TOP_KEYS = ("study", "base", "grid", "overrides")
DONE = ("finished", "non-finite")  # stored statuses of a run that ended with a final network
# what a worker process sets before numpy loads: one BLAS thread per worker (as dask's nanny does)
WORKER_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


# --- addressing a run spec with dotted keys ---------------------------------------------------
def _flatten(table: dict, prefix="") -> dict:
    """{"a": {"b": v}} -> {"a.b": v}: nested TOML tables and quoted dotted keys mean the same."""
    out = {}
    for k, v in table.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def _term(spec: dict, label: str, key: str) -> dict:
    labels = [t.get("label") or t["name"] for t in spec["loss"]]
    if label not in labels:
        raise ConfigError(f"study: {key!r} names no loss term; term labels are {', '.join(labels)}")
    return spec["loss"][labels.index(label)]


def set_key(spec: dict, key: str, value) -> None:
    """Set the dotted `key` of a run spec dict in place (see the module docstring)."""
    parts = key.split(".")
    if parts[0] not in ("dynamics", "loss", "optimizer") or len(parts) < 2:
        raise ConfigError(f"study: key {key!r} must start with dynamics., loss.<label>. or optimizer.")
    if parts[:2] == ["dynamics", "seed"]:
        raise ConfigError("study: dynamics.seed cannot be swept; seeds come from the study seed (use repeats)")
    if parts[0] == "loss":
        if len(parts) < 3:
            raise ConfigError(f"study: key {key!r} must be loss.<label>.<setting>")
        node, path = _term(spec, parts[1], key), parts[2:]
    else:
        node, path = spec[parts[0]], parts[1:]
    for p in path[:-1]:
        node = _child(node, p, key)
    last = path[-1]
    if isinstance(node, list):
        _child(node, last, key)
        node[int(last)] = value
    elif isinstance(node, dict):
        node[last] = value
    else:
        raise ConfigError(f"study: key {key!r} walks into {node!r}, which is not a table or list")


def _child(node, part, key):
    if isinstance(node, dict) and part in node:
        return node[part]
    if isinstance(node, list) and part.isdigit() and int(part) < len(node):
        return node[int(part)]
    raise ConfigError(f"study: key {key!r}: no entry {part!r} in {node!r}")


def canonical(obj) -> str:
    """Deterministic JSON (sorted keys, no spaces) used for run keys and ids."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def derive_seed(study_seed: int, key: str) -> int:
    """The dynamics seed of the run with this key: sha256("<study_seed>:<key>"), first 4 bytes LE."""
    return int.from_bytes(hashlib.sha256(f"{study_seed}:{key}".encode()).digest()[:4], "little")


@dataclass(frozen=True)
class PlannedRun:
    """One run of a study: its overrides (dotted key -> value), repeat, seed, spec and id."""

    run_id: str
    key: str
    overrides: dict
    repeat: int
    seed: int
    spec: dict


# --- the study ----------------------------------------------------------------------------------
@dataclass
class Study:
    """A base run spec swept over a grid and/or override list, with repeats (module docstring)."""

    base: dict
    grid: dict = field(default_factory=dict)
    overrides: list = field(default_factory=list)
    repeats: int = 1
    seed: int = 0
    name: str = "study"
    plugin_files: tuple = ()

    def __post_init__(self):
        RunSpec.from_dict(self.base)  # validates the sections
        if "seed" in self.base["dynamics"]:
            raise ConfigError("study: base dynamics must not set seed; every run's seed is derived from the "
                              "study seed ([study] seed)")
        integer("study", "repeats", self.repeats, low=1)
        integer("study", "seed", self.seed, low=0)
        if not isinstance(self.name, str) or not self.name or "/" in self.name:
            raise ConfigError(f"study: name must be a non-empty string without '/', got {self.name!r}")
        if not isinstance(self.grid, dict):
            raise ConfigError(f"study: grid must be a table of dotted keys to value lists, got {self.grid!r}")
        self.grid = _flatten(self.grid)
        for k, values in self.grid.items():
            if not isinstance(values, list) or not values:
                raise ConfigError(f"study: grid value of {k!r} must be a non-empty list, got {values!r}")
        if not isinstance(self.overrides, list) or not all(isinstance(o, dict) for o in self.overrides):
            raise ConfigError(f"study: overrides must be a list of tables, got {self.overrides!r}")
        self.overrides = [_flatten(o) for o in self.overrides]
        self.plugin_files = tuple(str(Path(p).resolve()) for p in self.plugin_files)
        self.runs()  # every key must address the base spec

    @classmethod
    def from_dict(cls, d: dict, root=".", default_name="study") -> "Study":
        """A study from a parsed study file; plugin paths are relative to `root`."""
        no_extra("study file", d, TOP_KEYS)
        head = d.get("study", {})
        no_extra("study file [study]", head, STUDY_KEYS)
        if "base" not in d:
            raise ConfigError("study file: missing table [base] (the base run spec: dynamics, loss, optimizer)")
        plugins = head.get("plugins", [])
        if not isinstance(plugins, list):
            raise ConfigError(f"study: plugins must be a list of file paths, got {plugins!r}")
        return cls(d["base"], d.get("grid", {}), d.get("overrides", []), head.get("repeats", 1),
                   head.get("seed", 0), head.get("name", default_name),
                   tuple(Path(root) / p for p in plugins))

    @classmethod
    def from_toml(cls, path) -> "Study":
        path = Path(path)
        try:
            with open(path, "rb") as f:
                d = tomllib.load(f)
        except tomllib.TOMLDecodeError as err:
            raise ConfigError(f"study file {path}: not valid TOML ({err})") from None
        return cls.from_dict(d, path.parent, path.stem)

    @property
    def swept(self) -> list[str]:
        """The dotted keys that vary between runs (grid keys, then override keys), in file order."""
        keys = list(self.grid)
        for o in self.overrides:
            keys += [k for k in o if k not in keys]
        return keys

    def points(self) -> list[dict]:
        combos = [dict(zip(self.grid, values)) for values in itertools.product(*self.grid.values())]
        return [{**g, **o} for g in combos for o in (self.overrides or [{}])]

    def runs(self) -> list[PlannedRun]:
        """Every run of the study, grid point by grid point, repeats innermost."""
        out, seen = [], set()
        for point in self.points():
            for r in range(self.repeats):
                key = canonical({"overrides": point, "repeat": r})
                if key in seen:
                    raise ConfigError(f"study: the point {point} occurs twice (grid and overrides overlap)")
                seen.add(key)
                spec = json.loads(json.dumps(self.base))
                for k, v in point.items():
                    set_key(spec, k, v)
                seed = derive_seed(self.seed, key)
                spec["dynamics"]["seed"] = seed
                RunSpec.from_dict(spec)
                digest = hashlib.sha256(canonical(spec).encode()).hexdigest()[:12]
                out.append(PlannedRun(f"{self.name}-{digest}", key, point, r, seed, spec))
        return out

    def run(self, path, executor=None, *, workers=None, progress=True, retry_failed=False,
            on_result=None) -> "StudyReport":
        """Run every run the HDF5 file at `path` does not hold as done; only this process writes it.

        `executor`: None (a local 'spawn' process pool of `workers` processes, default: CPU
        count), a concurrent.futures.Executor, or a dask.distributed Client. Runs stored as failed
        are skipped unless `retry_failed`; interrupted ones are always redone (as a new attempt,
        id '<run id>.<k>'). `on_result(planned, outcome)` is called after each run is written.
        """
        from tcnet.plugins import registry

        plugins = registry(self.plugin_files)
        planned = self.runs()
        have = stored(path, planned, plugins)
        skip = DONE if retry_failed else (*DONE, "failed")
        todo = [p for p in planned if p.run_id not in have or have[p.run_id][0].status not in skip]
        report = StudyReport(total=len(planned), skipped=len(planned) - len(todo))
        if not todo:
            return report
        bar = tqdm(total=len(planned), initial=report.skipped, desc=self.name, unit="run", disable=not progress)
        try:
            with _tasks(executor, workers, len(todo)) as (submit, completed):
                futures = {submit(execute_run, canonical(p.spec), list(self.plugin_files)): p for p in todo}
                for fut in completed(futures):
                    p = futures[fut]
                    bar.update(1)
                    try:
                        outcome = fut.result()
                    except Exception as err:  # execute_run never raises: the worker itself was lost
                        report.lost.append(f"{p.run_id}: {type(err).__name__}: {err}")
                        continue
                    attempt = have[p.run_id][1] + 1 if p.run_id in have else 1
                    written = write_outcome(path, p, outcome, attempt, plugins)
                    if outcome["status"] == "failed":
                        report.failed.append(f"{written}: {outcome['error']}")
                    else:
                        report.done.append(written)
                    if on_result is not None:
                        on_result(p, outcome)
        finally:
            bar.close()
        return report

    def table(self, path) -> "Table":
        """Final loss, term values and dynamics summary, grouped by the swept keys (see Table)."""
        from tcnet.plugins import registry

        best = stored(Path(path), self.runs(), registry(self.plugin_files))
        return Table.build(self, {rid: rec for rid, (rec, _) in best.items()})


def _metrics(record) -> dict:
    """Final numbers of a stored run: loss, terms/<label>, steps, wall_time and, for a run with a
    final network, summary/<key> of its summary()."""
    h = record.history
    m = {}
    if len(h["step"]):
        m["loss"] = float(h["loss"][-1])
        m.update({k: float(h[k][-1]) for k in h if k.startswith("terms/")})
        m["steps"] = float(h["step"][-1])
        m["wall_time"] = float(h["wall_time"][-1])
    if record.final_data is not None:
        m.update({f"summary/{k}": float(v) for k, v in record.final.summary().items()})
    return m


@dataclass
class StudyReport:
    """What one call of Study.run did. `lost`: runs whose worker died (rerun to redo them)."""

    total: int
    skipped: int
    done: list = field(default_factory=list)
    failed: list = field(default_factory=list)
    lost: list = field(default_factory=list)

    def __str__(self):
        return (f"{self.total} runs: {self.skipped} already in the file, {len(self.done)} done, "
                f"{len(self.failed)} failed, {len(self.lost)} lost")


# --- the task a worker runs ------------------------------------------------------------------
def _columns(steps) -> dict:
    """History columns (numpy arrays) of a list of Steps, named as the store names them."""
    history = {k: np.array([getattr(s, k) for s in steps]) for k in ("step", "stage", "loss", "grad_norm", "wall_time")}
    for label in dict.fromkeys(k for s in steps for k in s.terms):
        history[f"terms/{label}"] = np.array([s.terms.get(label, np.nan) for s in steps], dtype=float)
    for key in dict.fromkeys(k for s in steps for k in s.extra):
        history[f"extra/{key}"] = np.array([s.extra.get(key, np.nan) for s in steps], dtype=float)
    return history


def execute_run(spec_json: str, plugin_files: list) -> dict:
    """Run one spec in this process and return plain data (strings, numbers, numpy arrays):

    status (the store's: "finished", "non-finite" or "failed"), error, the result's counts and
    message, the network (name, config, seed, initial and final arrays), the history columns, the
    last step's point and optimizer state, wall time and worker. A run that raises is returned as
    failed with its error and the steps it made; it never raises itself.
    """
    from tcnet.plugins import registry
    from tcnet.run import History, build_dynamics, run

    t0 = time.perf_counter()
    out = {"worker": f"{socket.gethostname()}:{os.getpid()}", "error": "", "initial": None}
    history = History()
    try:
        spec = RunSpec.from_dict(json.loads(spec_json))
        plugins = registry(plugin_files)
        initial = build_dynamics(spec.dynamics, plugins)
        out.update(name=initial.name, config=initial.config, seed=initial.seed, initial=dict(initial.arrays))
        res = run(spec, progress=False, plugins=plugins, dynamics=initial, recorders=[history])
        r = res.result
        out.update(status="non-finite" if r.status == "non-finite" else "finished", optimizer_status=r.status,
                   message=r.message, steps=r.steps, evaluations=r.evaluations, final=dict(res.final.arrays))
    except Exception as err:
        out.update(status="failed", error=f"{type(err).__name__}: {err}", error_type=type(err).__name__,
                   message=str(err), traceback=traceback.format_exc())
    steps = history.steps
    out["history"] = _columns(steps)
    out["checkpoint"] = {"x": steps[-1].x, "state": steps[-1].state} if steps else None
    out["wall_time"] = time.perf_counter() - t0
    return out


# --- reading and writing the study's runs through the store ------------------------------------
def attempt_ids(run_id: str, k: int) -> str:
    """The store id of attempt k (1, 2, ...) of a planned run: the run id, then '<id>.<k>'."""
    return run_id if k == 1 else f"{run_id}.{k}"


def _attempts(path) -> dict[str, list[str]]:
    """Stored ids grouped by planned run id (in attempt order)."""
    from tcnet.store import list_runs

    if not Path(path).exists():
        return {}
    out: dict[str, list[str]] = {}
    for rid in list_runs(path):
        base, _, k = rid.rpartition(".")
        out.setdefault(base if k.isdigit() and base else rid, []).append(rid)
    return out


def stored(path, planned: list, plugins=None) -> dict:
    """For each planned run the file holds: the record of its best attempt (finished or
    non-finite before failed before interrupted; the latest among equals) and its attempt count."""
    from tcnet.store import read_run

    rank = {"finished": 0, "non-finite": 0, "failed": 1}
    attempts = _attempts(path)
    out = {}
    for p in planned:
        ids = attempts.get(p.run_id, [])
        records = [read_run(path, rid, plugins=plugins) for rid in ids]
        for rec in records:
            if rec.spec != p.spec:
                raise ConfigError(f"study: {path} holds run {rec.run_id} with another spec than this study's run "
                                  f"{p.key}; use another output file")
        if records:
            best = min(reversed(records), key=lambda rec: rank.get(rec.status, 2))
            out[p.run_id] = (best, len(records))
    return out


def write_outcome(path, planned: PlannedRun, outcome: dict, attempt: int, plugins) -> str:
    """Write a worker's outcome as a complete run through the store's RunWriter (this process
    only): the spec, the initial network (none if it could not be created), every history row, then the final network (finish) or the error (fail). Returns the stored id."""
    from tcnet.optim import Result, Step
    from tcnet.store import RunWriter

    def network(arrays):  # the worker's network (dynamics, config, seed) with these arrays
        return plugins.get("dynamics", outcome["name"])(arrays, outcome["config"], outcome["seed"])

    initial = None if outcome["initial"] is None else network(outcome["initial"])
    h = outcome["history"]
    n = len(h["step"])
    terms = [k for k in h if k.startswith("terms/")]
    extra = [k for k in h if k.startswith("extra/")]
    run_id = attempt_ids(planned.run_id, attempt)
    writer = RunWriter(path, run_id, flush_steps=n + 1, flush_seconds=1e9)  # one commit, at the end
    writer.start(RunSpec.from_dict(planned.spec), initial)
    last = outcome["checkpoint"]
    for i in range(n):
        # the writer keeps the point and optimizer state of the last step only (its checkpoint)
        writer.step(Step(step=int(h["step"][i]), stage=int(h["stage"][i]), loss=float(h["loss"][i]),
                         terms={k[6:]: float(h[k][i]) for k in terms}, grad_norm=float(h["grad_norm"][i]),
                         wall_time=float(h["wall_time"][i]), x=last["x"] if i == n - 1 else None,
                         state=last["state"] if i == n - 1 else {},
                         extra={k[6:]: float(h[k][i]) for k in extra if np.isfinite(h[k][i])}))
    if outcome["status"] == "failed":
        # an exception of the worker's error type, so the store records "<Type>: <message>"
        writer.fail(type(outcome["error_type"], (RuntimeError,), {})(outcome["message"]))
    else:
        final = network(outcome["final"])
        writer.finish(Result(final.vector(), outcome["optimizer_status"], outcome["message"], outcome["steps"],
                             outcome["evaluations"]), final)
    return run_id


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
def _worker_environment():
    """WORKER_ENV in os.environ while worker processes are spawned (they inherit it before numpy
    loads, so each uses one BLAS thread); the driver's environment is restored afterwards."""
    saved = {k: os.environ.get(k) for k in WORKER_ENV}
    os.environ.update(WORKER_ENV)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


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
            with _worker_environment():  # workers are spawned at submit
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


# --- summaries ----------------------------------------------------------------------------------
def _nan(value) -> float:
    """A pooled value of group_rows as a float: None (no values, or a std of one value) is nan."""
    return math.nan if value is None else value


@dataclass
class Table:
    """One row per study point: the swept keys' values, n (runs done: finished or non-finite),
    failed (count), and mean and std over the done repeats of every metric: loss (final total),
    terms/<label> (final unweighted term values), steps, wall_time (of the optimization) and
    summary/<key> (the final network's `summary()`, e.g. decay times). The repeats are pooled by
    `tcnet.store.group_rows`, as `tcnet compare --group` pools them; a std of one run is nan."""

    keys: list
    metrics: list
    rows: list

    @classmethod
    def build(cls, study: Study, records: dict) -> "Table":
        """The table of `records` (planned run id -> the stored record of its best attempt)."""
        from tcnet.store import group_rows

        points: dict[str, tuple[dict, list]] = {}
        for p in study.runs():
            points.setdefault(canonical(p.overrides), (p.overrides, []))[1].append(records.get(p.run_id))
        done = {key: [(rec, _metrics(rec)) for rec in recs if rec is not None and rec.status in DONE]
                for key, (_, recs) in points.items()}
        metrics = list(dict.fromkeys(k for runs in done.values() for _, m in runs for k in m))
        rows = []
        for key, (point, recs) in points.items():
            # the plan says which runs repeat this point: they go to group_rows as one group
            pooled = group_rows([{"run": rec.run_id, "status": rec.status, **{k: m.get(k) for k in metrics}}
                                 for rec, m in done[key]])
            group = pooled[0] if pooled else {"n": 0}
            row = {k: point.get(k) for k in study.swept}
            row["n"] = group["n"]
            row["failed"] = sum(rec is not None and rec.status == "failed" for rec in recs)
            for k in metrics:
                row[f"{k}:mean"], row[f"{k}:std"] = _nan(group.get(k)), _nan(group.get(f"{k}.std"))
            rows.append(row)
        return cls(list(study.swept), metrics, rows)

    @property
    def columns(self) -> list[str]:
        return [*self.keys, "n", "failed", *(f"{m}:{s}" for m in self.metrics for s in ("mean", "std"))]

    def to_csv(self, f) -> None:
        import csv

        w = csv.writer(f)
        w.writerow(self.columns)
        for row in self.rows:
            w.writerow([_csv_value(row[c]) for c in self.columns])

    def format(self, metrics=None) -> str:
        """A plain-text table of mean ± std for `metrics` (default: loss, terms, decay times)."""
        metrics = metrics or [m for m in self.metrics if m == "loss" or m.startswith(("terms/", "summary/t_"))]
        head = [*self.keys, "n", "failed", *metrics]
        lines = [[*(json.dumps(r[k]) for k in self.keys), str(r["n"]), str(r["failed"]),
                  *(f"{r[m + ':mean']:.4g} ± {r[m + ':std']:.2g}" for m in metrics)] for r in self.rows]
        widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(head)]
        fmt = "  ".join(f"{{:<{w}}}" for w in widths)
        return "\n".join([fmt.format(*head), *(fmt.format(*line) for line in lines)]).rstrip()


def _csv_value(v):
    if isinstance(v, float):
        return repr(v)
    return v if isinstance(v, (int, str)) else json.dumps(v)


# --- command line -----------------------------------------------------------------------------------
def add_commands(sub) -> None:
    """The `tcnet study` and `tcnet plot-study` subcommands."""
    sp = sub.add_parser("study", help="run a study file (grid of runs) into one HDF5 file, resumably, "
                        "and print its summary table", description=__doc__.split("\n\n")[0])
    sp.add_argument("study_file", metavar="STUDY.toml")
    sp.add_argument("-o", "--out", metavar="FILE.h5", help="HDF5 file of the runs (default: <study name>.h5)")
    where = sp.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, help="local worker processes (default: the CPU count)")
    where.add_argument("--dask-scheduler", metavar="ADDRESS",
                       help="submit the runs to this dask.distributed scheduler (e.g. tcp://host:8786)")
    sp.add_argument("--retry-failed", action="store_true", help="run again the runs stored as failed")
    sp.add_argument("--summary", action="store_true", help="do not run anything: summarize the file")
    sp.add_argument("--csv", metavar="PATH", help="write the summary table as CSV to PATH ('-': stdout)")
    sp.add_argument("--no-progress", action="store_true", help="no progress bar")
    sp.set_defaults(handler=_study_command)
    sp = sub.add_parser("plot-study", help="figures of a study: metrics against a swept key, one line per "
                        "other swept value; trade-offs of swept loss weights (PNG)")
    sp.add_argument("study_file", metavar="STUDY.toml")
    sp.add_argument("-o", "--out", metavar="FILE.h5", help="HDF5 file of the runs (default: <study name>.h5)")
    sp.add_argument("--prefix", help="figure path prefix (default: FILE without .h5)")
    sp.add_argument("--x", help="swept key on the x axis (default: the numeric key with the most values)")
    sp.add_argument("--metric", action="append", help="metric to draw (repeatable; default: loss and "
                    "decay times summary/t_* if the dynamics reports them, else the terms)")
    sp.set_defaults(handler=_plot_study_command)


def _cli_study(args) -> tuple[Study, Path]:
    study = Study.from_toml(args.study_file)
    if args.plugin:
        study = Study(study.base, study.grid, study.overrides, study.repeats, study.seed, study.name,
                      study.plugin_files + tuple(args.plugin))
    return study, Path(args.out or f"{study.name}.h5")


def _study_command(args) -> int:
    """Run (unless --summary) the study into its file, then print or write its summary table."""
    study, path = _cli_study(args)
    status = 0
    if not args.summary:
        client = None
        if args.dask_scheduler:
            from distributed import Client

            client = Client(args.dask_scheduler)
        try:
            report = study.run(path, client, workers=args.workers, progress=not args.no_progress)
        finally:
            if client is not None:
                client.close()
        print(f"{study.name}: {report} -> {path}", file=sys.stderr)
        for line in report.failed + report.lost:
            print(f"  {line}", file=sys.stderr)
        status = 1 if report.failed or report.lost else 0
    elif not path.exists():
        raise ConfigError(f"study: no file {path} to summarize (run the study first)")
    table = study.table(path)
    if args.csv == "-":
        table.to_csv(sys.stdout)
    else:
        print(table.format())
        if args.csv:
            with open(args.csv, "w", newline="") as f:
                table.to_csv(f)
    return status


def _plot_study_command(args) -> int:
    """Draw the study's figures from its file; print their paths."""
    from tcnet.plot import study_figures

    study, path = _cli_study(args)
    if not path.exists():
        raise ConfigError(f"plot-study: no file {path} (run the study first)")
    prefix = args.prefix or str(path.with_suffix(""))
    for figure in study_figures(study.table(path), prefix, args.x, args.metric):
        print(figure)
    return 0
