"""Reading tcnet files as analysis code wants them: pandas tables and labelled xarray arrays.

    f = tcnet.open("runs.h5")
    f.runs                      # one row per run: the table `tcnet compare --csv` prints
    f.groups                    # repeats pooled (mean, std, n): `tcnet compare --group --csv`
    f.history("run-0001")       # the run's steps, indexed by step, with stage names
    f.network("run-0001")       # a network as its Dynamics (names as in load_network)
    f.simulate("run-0001", t)   # trajectories: DataArray (time, trajectory, <state axis>)
    f.simulate("run-0001", t, x0=x0)  # ... from your own initial states (n, dim)
    f.simulate_task("run-0001") # a task's conditions: Dataset of x (time, condition, <state axis>),
                                # readout y and target (time, condition, output)
    f.grid()                    # the summary table of the study the file holds (tcnet study, tcnet train)
    f.grid("study.toml")        # a study's summary table, indexed by its swept keys
    f.fixed_points("run-0001")  # fixed and slow points of a network (tcnet.fixedpoints), one row each
    load_trajectories("sim.h5") # a file written by `tcnet simulate --out`, as a DataArray
    load_fixed_points("fp.h5")  # a file written by tcnet.store.save_fixed_points, as a table

Nothing is read when a file is opened but its root attributes; each property or method reads what
it needs when it is called (a file with thousands of runs costs one run's read for one history),
and the run tables are read once per `StoreFile` (open the file again to see runs added since).
Every table is built by the store's own functions (`compare_table`, `group_rows`, `read_run`,
`load_network`, `read_trajectories`), so these frames hold the numbers the CLI prints.
Labels and units of trajectories come from the dynamics' declaration (`tcnet.labels`). Columns and
status words are the store's everywhere (`tcnet.store.tables`): terms/<label>, summary/<key>,
'<metric>:mean', finished, failed.
"""
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from tcnet import store
from tcnet.dynamics import Dynamics
from tcnet.fixedpoints import FixedPoints
from tcnet.labels import Labels
from tcnet.plugins import Registry, registry as default_registry
from tcnet.validate import ConfigError, integer


def open(path, *, plugins: Registry | None = None) -> "StoreFile":  # noqa: A001 (tcnet.open, like xr.open_dataset)
    """The tcnet file (runs and networks) at `path`, ready to read from."""
    return StoreFile(path, plugins)


def frame(rows: list[dict]) -> pd.DataFrame:
    """A DataFrame of table rows (dicts with the same keys) whose columns have the dtypes pandas
    gives the same table read from CSV: None is a missing value, a column of None is float NaN."""
    df = pd.DataFrame.from_records(rows, columns=list(rows[0]) if rows else None)
    empty = [c for c in df.columns if df[c].isna().all()]
    return df.astype({c: "float64" for c in empty})


class StoreFile:
    """One tcnet file opened for reading (see the module docstring)."""

    def __init__(self, path, plugins: Registry | None = None):
        self.path = Path(path)
        self.plugins = plugins or default_registry()
        self.info = store.file_info(self.path)  # checks that it is a tcnet file; reads nothing else

    def __repr__(self):
        return f"<tcnet file {str(self.path)!r}>"

    # --- runs ------------------------------------------------------------------------------------
    @property
    def run_ids(self) -> list[str]:
        """The run ids, in the order the runs were created."""
        return store.list_runs(self.path)

    @cached_property
    def _rows(self) -> list[dict]:
        return store.compare_table([self.path], plugins=self.plugins)

    @property
    def runs(self) -> pd.DataFrame:
        """One row per run, the columns of `tcnet compare --csv`: file, run, status, the spec keys
        that differ between runs, loss, terms/<label>, steps, evaluations, wall_time, summary/<key>."""
        return frame(self._rows)

    @property
    def groups(self) -> pd.DataFrame:
        """Repeats pooled, the columns of `tcnet compare --group --csv`: the differing spec keys
        but seeds, n, finished, failed, and '<column>:mean', '<column>:std' of every numeric column."""
        return frame(store.group_rows(self._rows))

    def record(self, run_id: str) -> store.RunRecord:
        """Everything stored about one run (tcnet.store.read_run)."""
        return store.read_run(self.path, run_id, plugins=self.plugins)

    def history(self, run_id: str) -> pd.DataFrame:
        """The run's committed steps, indexed by `step`: stage (number) and stage_name (the
        optimizer of that stage), loss, grad_norm, wall_time, terms/<label> (unweighted term
        values) and extra/<key> (the optimizer's and the state's extra columns), named and valued
        exactly as stored."""
        rec = self.record(run_id)
        names = _stage_names(rec.spec["optimizer"])
        h = rec.history
        columns = {"stage": h["stage"], "stage_name": [names.get(int(s), str(int(s))) for s in h["stage"]]}
        columns.update({k: v for k, v in h.items() if k not in ("step", "stage")})
        return pd.DataFrame(columns, index=pd.Index(h["step"], name="step"))

    # --- networks ----------------------------------------------------------------------------------
    @property
    def networks(self) -> list[str]:
        """Names of the saved networks (/networks/<name>)."""
        return store.list_networks(self.path)

    def network(self, name: str) -> Dynamics:
        """A network as its Dynamics: a saved network's name, or '<run>', '<run>/final',
        '<run>/initial', '<run>/checkpoint' (tcnet.store.load_network)."""
        return store.load_network(self.path, name, plugins=self.plugins)

    def simulate(self, name: str, t, n: int = 8, seed: int = 0, x0=None) -> xr.DataArray:
        """Trajectories of network `name` at times t from the initial states `x0` (n_states, dim)
        or (dim,), or else from n of its `sample_initial(n, seed)` states."""
        net = self.network(name)
        da = simulate(net, t, n, seed, x0)
        da.attrs.update(source=str(self.path), network=name)
        return da

    def simulate_task(self, name: str, task=None) -> xr.Dataset:
        """Network `name` simulated on the conditions of a task (a tcnet.task.Task or a task file;
        None: the network's own task): `simulate_task` below."""
        ds = simulate_task(self.network(name), task)
        ds.attrs.update(source=str(self.path), network=name)
        return ds

    def fixed_points(self, name: str, starts=None, n: int = 64, seed: int = 0, noise: float = 0.0,
                     **settings) -> pd.DataFrame:
        """The fixed and slow points of network `name` as a table (`fixed_points_table`), searched
        from `starts` (n, dim) or from n states along its own trajectories (its
        `trajectory_starts(n, seed, noise)`, else `sample_initial(n, seed)`); `settings` go to
        tcnet.fixedpoints.find."""
        net = self.network(name)
        if starts is None:
            starts = (net.trajectory_starts(n, seed, noise) if hasattr(net, "trajectory_starts")
                      else net.sample_initial(n, seed))
        table = fixed_points_table(net.fixed_points(starts, **settings))
        table.attrs.update(source=str(self.path), network=name)
        return table

    # --- studies -----------------------------------------------------------------------------------
    def grid(self, study=None) -> pd.DataFrame:
        """The summary table of a study over this file, indexed by the swept keys: n, finished,
        failed and '<metric>:mean', '<metric>:std' (what `tcnet study --csv` writes). `study`: None
        (the one study the file keeps, see `studies`), the name of a study the file keeps, a Study
        or a study file."""
        from tcnet.study import Study

        if not isinstance(study, Study):
            kept = self.studies
            if study is None or study in kept:
                if study is None and len(kept) != 1:
                    raise ConfigError(f"grid: {self.path} keeps {len(kept)} studies ({', '.join(kept) or 'none'}); "
                                      "name one, or give its study file")
                study = Study.from_dict(kept[study or next(iter(kept))])
            else:
                study = Study.from_toml(study)
        return study.table(self.path).frame()

    @cached_property
    def studies(self) -> dict[str, dict]:
        """The definitions of the studies run into this file (`tcnet study`, `tcnet train`) by name,
        as `Study.from_dict` reads them; none in a file written before studies were kept."""
        from tcnet.study import definitions

        return definitions(self.path)


def simulate(dynamics: Dynamics, t, n: int = 8, seed: int = 0, x0=None) -> xr.DataArray:
    """`dynamics.simulate` at times t, labelled: from the initial states `x0` ((n_states, dim), or
    one state (dim,)), or else from its `sample_initial(n, seed)` states."""
    t = np.asarray(t, dtype=float)
    if t.ndim != 1 or t.size < 1:
        raise ConfigError(f"simulate: t must be a 1-D array of times, got shape {t.shape}")
    if x0 is None:
        integer("simulate", "n", n, low=1)
        x0, origin = dynamics.sample_initial(n, seed=seed), {"seed": seed}
    else:
        x0, origin = initial_states(dynamics, x0, "x0"), {"x0": "given"}
    x = np.asarray(dynamics.simulate(x0, t))
    return trajectories(type(dynamics).labels, t, x, {"dynamics": dynamics.name, **origin})


def initial_states(dynamics: Dynamics, x0, name: str = "x0") -> np.ndarray:
    """`x0` as finite initial states (n, dim) of `dynamics` (one state (dim,) becomes (1, dim)); the
    dimension is its `sample_initial`'s. `name` names the parameter in the error."""
    x0 = np.asarray(x0, dtype=float)
    dim = dynamics.sample_initial(1).shape[-1]
    if x0.ndim == 1:
        x0 = x0[None]
    if x0.ndim != 2 or x0.shape[1] != dim or x0.shape[0] < 1:
        raise ConfigError(f"simulate: {name} must hold initial states of shape (n, {dim}) or ({dim},) for "
                          f"{dynamics.name!r}, got shape {x0.shape}")
    if not np.all(np.isfinite(x0)):
        raise ConfigError(f"simulate: {name} must be finite")
    return x0


def read_initial_states(path) -> np.ndarray:
    """Initial states from a file: .npy (the array), .npz (its one array, or the one named x0),
    or text (.txt, .csv: one state per row, whitespace or comma separated)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"simulate: --x0 {str(path)!r}: no such file")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        return np.load(path, allow_pickle=False)
    if suffix == ".npz":
        with np.load(path, allow_pickle=False) as z:
            if "x0" in z.files or len(z.files) == 1:
                return z["x0" if "x0" in z.files else z.files[0]]
            raise ConfigError(f"simulate: --x0 {str(path)!r} holds {', '.join(z.files)}; name one array x0")
    if suffix in (".txt", ".csv"):
        return np.loadtxt(path, delimiter="," if suffix == ".csv" else None, ndmin=2)
    raise ConfigError(f"simulate: --x0 must be a .npy, .npz, .txt or .csv file, got {str(path)!r}")


def simulate_task(dynamics: Dynamics, task=None) -> xr.Dataset:
    """`dynamics.simulate` on the conditions of `task` (a Task, a task file, or None: the
    network's own `task`): its grid, inputs and initial states (else `sample_initial`). A Dataset of
    x (time, condition, <state axis>) and, for a dynamics with a readout, y and the task's target
    (time, condition, output), labelled from the dynamics' declaration."""
    from tcnet.task import Task

    task = dynamics.task if task is None else task if isinstance(task, Task) else Task.read(task)
    if task is None:
        raise ConfigError(f"simulate_task: dynamics {dynamics.name!r} holds no task; give one")
    x0 = task.x0 if task.x0 is not None else dynamics.sample_initial(task.conditions)
    u = task.inputs
    x = np.asarray(dynamics.simulate(x0, task.t) if u is None else dynamics.simulate(x0, task.t, u))
    labels = type(dynamics).labels
    da = trajectories(labels, task.t, x).rename(trajectory="condition")
    out = {"x": da}
    y = dynamics.readout(x)
    if y is not None:
        dims, coords = ("time", "condition", "output"), {"time": da["time"], "condition": da["condition"]}
        out["y"] = xr.DataArray(y, dims=dims, coords=coords, attrs={"long_name": "readout"})
        out["target"] = xr.DataArray(task.targets, dims=dims, coords=coords, attrs={"long_name": "target"})
    return xr.Dataset(out, attrs={"dynamics": dynamics.name})


def fixed_points_table(points) -> pd.DataFrame:
    """A tcnet.fixedpoints.FixedPoints as a table: one row per point (kind "fixed" or "slow",
    stable, number of unstable directions, speed q, leading eigenvalue's real part, x0..)."""
    return frame(points.rows())


def load_fixed_points(path) -> pd.DataFrame:
    """The table (`fixed_points_table`) of a file written by tcnet.store.save_fixed_points."""
    arrays, attrs = store.read_fixed_points(path)
    table = fixed_points_table(FixedPoints(arrays["x"], arrays["q"], arrays["fixed"].astype(bool),
                                           arrays["eigenvalues"], arrays["vectors"]))
    table.attrs.update(attrs)
    return table


def load_trajectories(path, *, plugins: Registry | None = None) -> xr.DataArray:
    """The trajectories of a file written by `tcnet simulate --out`, labelled by the dynamics
    that made them (when the file names it and its plugin is installed)."""
    plugins = plugins or default_registry()
    t, x, attrs = store.read_trajectories(path)
    name = attrs.get("dynamics")
    labels = plugins.get("dynamics", name).labels if name in plugins.entries["dynamics"] else Labels()
    return trajectories(labels, t, x, attrs)


def trajectories(labels: Labels, t, x, attrs: dict | None = None) -> xr.DataArray:
    """Trajectories x (len(t), n, dim) as a DataArray with dims (time, trajectory, labels.axis),
    the time coordinate and the state entries' names and units from `labels`."""
    x = np.asarray(x)
    dim = x.shape[-1]
    entries = list(labels.entries) if len(labels.entries) == dim else np.arange(dim)
    time = xr.Variable("time", np.asarray(t), _cf(labels.time))
    return xr.DataArray(x, dims=("time", "trajectory", labels.axis),
                        coords={"time": time, "trajectory": np.arange(x.shape[1]), labels.axis: entries},
                        name="x", attrs={**_cf(labels.state), **(attrs or {})})


def _cf(q) -> dict:
    """The attributes xarray's plots label an axis with: long_name, and units when there is one."""
    return {"long_name": q.label, **({"units": q.unit} if q.unit else {})}


def _stage_names(optimizer: dict) -> dict[int, str]:
    """Stage number -> the optimizer that runs it: the stages' names of a staged optimizer, else
    the optimizer's own name for stage 0."""
    stages = optimizer.get("stages")
    if isinstance(stages, list) and stages:
        return {i: s.get("name", str(i)) for i, s in enumerate(stages)}
    return {0: optimizer["name"]}
