"""Comparative studies: one base run spec, a grid and/or list of overrides, repeats, many runs.

A study file (TOML)::

    [study]
    name = "preparatory_small"    # prefix of the run ids (default: the file's stem)
    seed = 2017                   # the one seed every run's seed is derived from
    repeats = 3                   # runs per grid point, with different seeds
    seeds = "per-run"             # or "per-repeat" (see Seeds)
    plugins = []                  # single-file plugins (paths relative to the study file)
                                  # loading a plugin runs its code: run study files you trust
    base = "recipe.toml"          # optional: the base run spec from this run spec file (its
                                  # plugins too; its dynamics.seed and out unused); [base] keys
                                  # override it (tables key by key, other values whole)

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
without overrides, just the overrides without a grid, the base alone with neither). A study plans
at most `MAX_RUNS` (100000) runs, points times repeats, checked from the lengths before the plan is
built.

Seeds. A run's key is the canonical JSON of its overrides and repeat index; its dynamics seed is
the first 4 bytes (little-endian) of sha256("<study seed>:<key>"). So the same run always gets the
same seed, whatever the order or the executor, and adding grid values leaves the other runs'
seeds alone. With ``seeds = "per-repeat"`` repeat k of every point has the seed `seed + k`
instead, so points that differ only in a loss weight start from the same network (`tcnet train`'s
seeds). ``dynamics.seed`` cannot be swept (use repeats). A run's id is the study name plus a
hash of its complete spec (seed included): editing the base spec gives new ids, never a stale match.

Execution. Every run is an independent task `execute_run(spec_json, plugin_files)` that returns
plain data (numpy arrays, strings, numbers). Tasks go to a local process pool ('spawn', one BLAS
thread per worker) or to a dask.distributed Client; only this driver process writes the HDF5 file,
one finished run at a time. A rerun skips runs the file holds as done (or failed, unless
``retry_failed``) and redoes the rest, including runs a killed driver left unfinished. A run that
raises is recorded as failed with its error; the study goes on. So is a run whose network cannot
even be created (e.g. a grid value the dynamics rejects): it is stored without an initial network
(docs/FORMAT.md), its spec says what was asked for. The file keeps the study's `definition`
under its name (the root attribute `studies`), so `tcnet.open(FILE).grid()` reads a study's table
without its study file. `tcnet train` is such a study (tcnet_plugins.preparatory.cli.study).

Tables: a study's `Table` has the column names and status words of `tcnet compare` and
`tcnet.open` (`tcnet.store.tables`): the swept keys, n, finished, failed, '<metric>:mean' and
'<metric>:std' of loss, terms/<label>, steps, evaluations, wall_time, summary/<key>.

Modules (everything public is re-exported here, so `from tcnet.study import ...` is the API):
- `spec`: dotted keys (`set_key`), `canonical` JSON, `derive_seed` and `PlannedRun`.
- `worker`: the task a worker runs (`execute_run`, which spawned processes and dask workers import
  by this module path) and the executors: the local 'spawn' pool (tcnet.threads.WORKER_ENV), a
  concurrent.futures executor or a dask Client.
- `records`: the study's runs in the store: `stored` (best attempt of each planned run),
  `write_outcome`, `attempt_ids`, and the study definition a file holds
  (`write_definition`, `definitions`).
- `table`: `Table`, the summary of a study's file.
- `core`: `Study` (parsing, planning and running a study) and `StudyReport`.
- `cli`: `add_commands`, the `tcnet study` and `tcnet plot-study` subcommands.
"""
from tcnet.study.cli import add_commands
from tcnet.study.core import MAX_RUNS, STUDY_KEYS, TOP_KEYS, Study, StudyReport, exit_code
from tcnet.study.records import attempt_ids, definitions, stored, write_definition, write_outcome
from tcnet.study.spec import PlannedRun, canonical, derive_seed, set_key
from tcnet.study.table import Table
from tcnet.study.worker import execute_run

__all__ = [
    "MAX_RUNS", "STUDY_KEYS", "TOP_KEYS", "PlannedRun", "Study", "StudyReport", "Table", "add_commands", "exit_code",
    "attempt_ids", "canonical", "definitions", "derive_seed", "execute_run", "set_key", "stored",
    "write_definition", "write_outcome",
]
