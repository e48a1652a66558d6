"""The Study (a base run spec, its sweep and repeats; running it into one HDF5 file) and StudyReport."""
import hashlib
import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from tcnet.provenance import changed_files, code_digests, recorded_code, warn_changed
from tcnet.spec import RunSpec, SpecFile, read_toml
from tcnet.status import ENDED, NUMERICAL_FAILURES, Status
from tcnet.study.records import stored, write_definition, write_outcome
from tcnet.study.spec import PlannedRun, _flatten, canonical, derive_seed, set_key
from tcnet.study.table import Table
from tcnet.study.worker import _tasks, execute_run
from tcnet.validate import ConfigError, choice, integer, no_extra, seed

STUDY_KEYS = ("name", "seed", "repeats", "seeds", "plugins", "base")
SEEDS = ("per-run", "per-repeat")
"""How run seeds are made ([study] seeds, see the tcnet.study docstring)."""
TOP_KEYS = ("study", "base", "grid", "overrides")
MAX_RUNS = 100_000
"""The most runs a study may plan (grid points x overrides x repeats). Its plan is built and every
run's spec checked before anything runs, and each run is a task and a group in the file, so a study
far beyond this (a typo's 1e8 grid, repeats = 1e9) is refused at once instead of growing memory
until the process is killed; a larger campaign is several studies."""


@dataclass
class Study:
    """A base run spec swept over a grid and/or override list, with repeats (tcnet.study docstring)."""

    base: dict
    grid: dict = field(default_factory=dict)
    overrides: list = field(default_factory=list)
    repeats: int = 1
    seed: int = 0
    name: str = "study"
    plugin_files: tuple = ()
    seeds: str = "per-run"

    def __post_init__(self):
        RunSpec.from_dict(self.base)  # validates the sections
        if "seed" in self.base["dynamics"]:
            raise ConfigError("study: base dynamics must not set seed; every run's seed is derived from the "
                              "study seed ([study] seed)")
        integer("study", "repeats", self.repeats, low=1)
        seed("study", "seed", self.seed)
        choice("study", "seeds", self.seeds, SEEDS)
        if self.seeds == "per-repeat":
            seed("study", "seed + repeats - 1 (the last repeat's seed)", self.seed + self.repeats - 1)
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
        self._check_size()
        self.plugin_files = tuple(dict.fromkeys(str(Path(p).resolve()) for p in self.plugin_files))
        missing = [p for p in self.plugin_files if not Path(p).is_file()]
        if missing:
            raise ConfigError(f"study: plugin file(s) {', '.join(missing)} do not exist (plugins are paths "
                              "relative to the study file)")
        self.runs()  # every key must address the base spec, every run must check

    def _check_size(self) -> None:
        """Refuse a study that plans more than MAX_RUNS runs, from the lengths alone (nothing built)."""
        sizes = [len(v) for v in self.grid.values()]
        runs = float(np.prod(sizes, dtype=np.float64)) * max(1, len(self.overrides)) * self.repeats
        if runs > MAX_RUNS:
            shape = " x ".join(map(str, sizes)) or "no"
            raise ConfigError(f"study: plans {runs:.3g} runs (grid {shape} values x {max(1, len(self.overrides))} "
                              f"override(s) x repeats {self.repeats}), more than the {MAX_RUNS} a study may plan "
                              "(tcnet.study.MAX_RUNS); split it into several studies")

    @classmethod
    def from_dict(cls, d: dict, root=".", default_name="study") -> "Study":
        """A study from a parsed study file; paths (plugins, the base spec file) are relative to `root`."""
        no_extra("study file", d, TOP_KEYS)
        head = d.get("study", {})
        no_extra("study file [study]", head, STUDY_KEYS)
        plugins = head.get("plugins", [])
        if not isinstance(plugins, list):
            raise ConfigError(f"study: plugins must be a list of file paths, got {plugins!r}")
        plugins = [Path(root) / p for p in plugins]
        base = d.get("base", {})
        if "base" in head:
            spec_file = _base_file(Path(root), head["base"])
            included = spec_file.spec.as_dict()
            # a run's seed is the study's to give (its seed and out are the spec file's own runs')
            included["dynamics"] = {k: v for k, v in included["dynamics"].items() if k != "seed"}
            base = _merge(included, base)
            plugins = [*spec_file.plugins, *plugins]
        elif "base" not in d:
            raise ConfigError("study file: missing table [base] (the base run spec: dynamics, loss, optimizer) "
                              "and no [study] base = \"<run spec file>\" to take it from")
        return cls(base, d.get("grid", {}), d.get("overrides", []), head.get("repeats", 1),
                   head.get("seed", 0), head.get("name", default_name), tuple(plugins), head.get("seeds", "per-run"))

    def definition(self) -> dict:
        """This study as the tables of a study file (base spec file included, plugin paths absolute):
        `Study.from_dict(study.definition())` is the same study. A study's file keeps it
        (`tcnet.study.definitions`), so the file says what its runs are a study of."""
        head = {"name": self.name, "seed": self.seed, "repeats": self.repeats, "seeds": self.seeds,
                "plugins": list(self.plugin_files)}
        return {"study": head, "base": self.base, "grid": self.grid, "overrides": self.overrides}

    @classmethod
    def from_toml(cls, path) -> "Study":
        path = Path(path)
        return cls.from_dict(read_toml(path, f"study file {path}"), path.parent, path.stem)

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
        """Every run of the study, grid point by grid point, repeats innermost, each spec checked
        against the plugins' declarations (the offending grid point named) before any runs."""
        from tcnet.plugins import UnknownPluginError, registry

        plugins = registry(self.plugin_files)
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
                seed = derive_seed(self.seed, key) if self.seeds == "per-run" else self.seed + r
                spec["dynamics"]["seed"] = seed
                digest = hashlib.sha256(canonical(spec).encode()).hexdigest()[:12]
                try:
                    resolved = RunSpec.from_dict(spec).resolve(plugins).as_dict()
                except (ConfigError, UnknownPluginError) as err:
                    where = ", ".join(f"{k} = {json.dumps(v)}" for k, v in point.items()) or "the base spec"
                    raise ConfigError(f"study: run at {where}: {err}") from None
                out.append(PlannedRun(f"{self.name}-{digest}", key, point, r, seed, spec, resolved))
        return out

    def run(self, path, executor=None, *, workers=None, progress=True, retry_failed=False,
            on_result=None) -> "StudyReport":
        """Run every run the HDF5 file at `path` does not hold as done; only this process writes it.

        `executor`: None (a local 'spawn' process pool of `workers` processes, default: CPU
        count), a concurrent.futures.Executor, or a dask.distributed Client. Runs stored as failed
        are skipped unless `retry_failed`; interrupted ones are always redone (as a new attempt,
        id '<run id>.<k>'). `on_result(planned, outcome)` is called after each run is written
        (outcome: what `execute_run` returned, and run_id, the id it is stored under). The file
        keeps the study's `definition` under its name, so that `tcnet.open(path).grid()` needs no
        study file. A second driver on the same file is refused before it computes anything
        (`driver_lock`).
        """
        from tcnet.store import driver_lock

        with driver_lock(Path(path)):
            return self._drive(path, executor, workers, progress, retry_failed, on_result)

    def _drive(self, path, executor, workers, progress, retry_failed, on_result) -> "StudyReport":
        from tcnet.plugins import registry

        plugins = registry(self.plugin_files)
        planned = self.runs()
        have = stored(path, planned, plugins)
        write_definition(path, self.name, self.definition())
        skip = ENDED if retry_failed else (*ENDED, Status.FAILED)
        todo = [p for p in planned if p.run_id not in have or have[p.run_id][0].status not in skip]
        self._warn_changed_code([(p, have[p.run_id][0]) for p in planned if p.run_id in have and p not in todo],
                                plugins)
        report = StudyReport(total=len(planned), skipped=len(planned) - len(todo))
        if not todo:
            return report
        bar = tqdm(total=len(planned), initial=report.skipped, desc=self.name, unit="run", disable=not progress)
        try:
            with _tasks(executor, workers, len(todo)) as (submit, completed):
                futures = {submit(execute_run, canonical(p.resolved), list(self.plugin_files)): p for p in todo}
                for fut in completed(futures):
                    p = futures[fut]
                    bar.update(1)
                    try:
                        outcome = fut.result()
                    except Exception as err:  # execute_run never raises: the worker itself was lost
                        report.lost.append(f"{p.run_id}: {type(err).__name__}: {err}")
                        continue
                    attempt = have[p.run_id][1] + 1 if p.run_id in have else 1
                    written = outcome["run_id"] = write_outcome(path, p, outcome, attempt, plugins)
                    if outcome["status"] == Status.FAILED:
                        report.failed.append(f"{written}: {outcome['error']}")
                    else:
                        report.done.append(written)
                    if outcome["status"] in NUMERICAL_FAILURES:
                        report.numerical.append(f"{written} {outcome['status']}: {outcome['message']}")
                    if on_result is not None:
                        on_result(p, outcome)
        except KeyboardInterrupt as err:
            err.add_note(f"{len(report.done) + len(report.failed)} runs of this session are in {path}; run the same "
                         "study again to do the rest")
            raise
        finally:
            bar.close()
        return report

    def _warn_changed_code(self, kept: list, plugins) -> None:
        """Warn once, naming the files, if runs the file holds and this session keeps (`kept`:
        (planned run, stored record) pairs) were computed with plugin code that has changed since
        (tcnet.provenance): the study reuses them as they are; a new output file computes them again."""
        changed: dict[str, int] = {}
        for planned, rec in kept:
            recorded = recorded_code(rec.attrs)
            if recorded:
                for path in changed_files(recorded, code_digests(planned.resolved, plugins)):
                    changed[path] = changed.get(path, 0) + 1
        warn_changed(f"study {self.name}: {max(changed.values(), default=0)} run(s) in the file were", list(changed),
                     "they are kept as they are (a new output file computes them again)", stacklevel=3)

    def table(self, path) -> "Table":
        """Final loss, term values and dynamics summary, grouped by the swept keys (see Table)."""
        from tcnet.plugins import registry

        best = stored(Path(path), self.runs(), registry(self.plugin_files), networks=False)
        return Table.build(self, {rid: rec for rid, (rec, _) in best.items()})


@dataclass
class StudyReport:
    """What one call of Study.run did. `done`: runs that ran to their end, among them `numerical`,
    those that ended non-finite or diverged ("<id> <status>: <message>"); `lost`: runs whose
    worker died (rerun to redo them)."""

    total: int
    skipped: int
    done: list = field(default_factory=list)
    failed: list = field(default_factory=list)
    lost: list = field(default_factory=list)
    numerical: list = field(default_factory=list)

    def __str__(self):
        numerical = f" ({len(self.numerical)} non-finite or diverged)" if self.numerical else ""
        return (f"{self.total} runs: {self.skipped} already in the file, {len(self.done)} done{numerical}, "
                f"{len(self.failed)} failed, {len(self.lost)} lost")


def exit_code(report: StudyReport | None, statuses) -> int:
    """The exit status of a command that runs or summarizes a study (`tcnet study`, `tcnet train`),
    by the rule of `tcnet run`: 1 if a run of this session failed or was lost (`report`; None
    when nothing was run) or any run of the study in the file (`statuses`, their stored status
    words) ended non-finite or diverged; else 0."""
    failed = report is not None and bool(report.failed or report.lost)
    return 1 if failed or any(s in NUMERICAL_FAILURES for s in statuses) else 0


def _base_file(root: Path, name) -> SpecFile:
    """The run spec file that [study] base names (relative to the study file)."""
    if not isinstance(name, str) or not name:
        raise ConfigError(f"study: [study] base must be the path of a run spec file, got {name!r}")
    if not (root / name).is_file():
        raise ConfigError(f"study: [study] base: no file {name!r} (paths are relative to the study file, in "
                          f"{root.resolve()})")
    return SpecFile.read(root / name)


def _merge(spec: dict, over: dict) -> dict:
    """`spec` with the keys of `over` put in: tables merge key by key, any other value (a list of
    loss terms, say) replaces the included one whole."""
    out = dict(spec)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out
