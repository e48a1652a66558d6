"""tcnet.open: the run tables equal what `tcnet compare --csv` prints (read with pandas), histories
and trajectories hold the stored numbers bit for bit, and opening a file reads nothing it is not
asked for."""
import concurrent.futures
import io
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest

import tcnet
from tcnet import store
from tcnet.cli import main
from tcnet.labels import Labels, Quantity
from tcnet.plugins import Registry
from tcnet.reader import load_trajectories, simulate, trajectories
from tcnet.store import RunWriter
from tcnet.study import Study

TESTS = Path(__file__).parent
PLUGIN = TESTS / "plugins_for_tests" / "store_linear.py"
PLUGINS = Registry(files=[PLUGIN])


def spec(seed, lr, steps=6):
    return {"dynamics": {"name": "store_linear", "seed": seed, "N": 3}, "loss": [{"name": "store_bowl"}],
            "optimizer": {"name": "staged", "stages": [{"name": "adam", "steps": steps, "lr": lr},
                                                      {"name": "lbfgs", "max_iter": 5}]}}


@pytest.fixture(scope="module")
def runs_file(tmp_path_factory):
    """Two learning rates x two seeds (finished), and a run that failed before its network existed."""
    path = tmp_path_factory.mktemp("reader") / "runs.h5"
    for lr in (0.01, 0.03):
        for seed in (1, 2):
            tcnet.run(spec(seed, lr), recorders=[RunWriter(path)], progress=False, plugins=PLUGINS)
    writer = RunWriter(path)
    writer.start(tcnet.RunSpec.from_dict(spec(3, 0.05)), None)
    writer.fail(ValueError("N must be >= 1"))
    return path


def cli_csv(capsys, *argv) -> pd.DataFrame:
    assert main(["--plugin", str(PLUGIN), *map(str, argv)]) == 0
    return pd.read_csv(io.StringIO(capsys.readouterr().out))


def test_runs_equal_compare_csv_read_with_pandas(capsys, runs_file):
    f = tcnet.open(runs_file, plugins=PLUGINS)
    runs = f.runs
    pd.testing.assert_frame_equal(runs, cli_csv(capsys, "compare", "--csv", runs_file))
    assert list(runs["run"]) == f.run_ids == [f"run-{i:04d}" for i in range(1, 6)]
    assert list(runs["status"]) == ["finished"] * 4 + ["failed"]
    assert runs["loss"].isna().tolist() == [False] * 4 + [True]


def test_groups_equal_compare_group_csv(capsys, runs_file):
    groups = tcnet.open(runs_file, plugins=PLUGINS).groups
    pd.testing.assert_frame_equal(groups, cli_csv(capsys, "compare", "--group", "--csv", runs_file))
    assert groups["optimizer.stages.0.lr"].tolist() == [0.01, 0.03, 0.05]
    assert groups["n"].tolist() == [2, 2, 1] and groups["finished"].tolist() == [2, 2, 0]
    assert groups["failed"].tolist() == [0, 0, 1]
    runs = tcnet.open(runs_file, plugins=PLUGINS).runs
    first = runs["loss"][runs["optimizer.stages.0.lr"] == 0.01].to_numpy()
    assert groups["loss:mean"][0] == pytest.approx(first.mean(), rel=1e-15)
    assert groups["loss:std"][0] == pytest.approx(first.std(ddof=1), rel=1e-12)


def test_history_holds_the_stored_columns_exactly_with_stage_names(runs_file):
    h = tcnet.open(runs_file, plugins=PLUGINS).history("run-0002")
    with h5py.File(runs_file, "r") as raw:
        g = raw["runs/run-0002/history"]
        rows = int(raw["runs/run-0002"].attrs["rows"])
        assert h.index.name == "step" and np.array_equal(h.index.to_numpy(), g["step"][:rows])
        for column in ("stage", "loss", "grad_norm", "wall_time"):
            assert np.array_equal(h[column].to_numpy(), g[column][:rows]), column
        assert np.array_equal(h["terms/store_bowl"].to_numpy(), g["terms/store_bowl"][:rows])
        stages = g["stage"][:rows]
    assert h["stage_name"].tolist() == [("adam", "lbfgs")[s] for s in stages]
    assert set(h["stage_name"]) == {"adam", "lbfgs"}  # both stages ran


def test_network_is_the_stored_dynamics(runs_file):
    f = tcnet.open(runs_file, plugins=PLUGINS)
    net = f.network("run-0001")
    assert net.name == "store_linear"
    final = store.read_run(runs_file, "run-0001", plugins=PLUGINS).final
    np.testing.assert_array_equal(net.arrays["J"], final.arrays["J"])


def test_simulated_trajectories_are_labelled_and_exact(runs_file):
    """store_linear: x(t) = expm(A t) x0 from sample_initial = default_rng(seed).normal((n, N))."""
    f = tcnet.open(runs_file, plugins=PLUGINS)
    t = np.linspace(0, 2, 11)
    da = f.simulate("run-0001", t, n=4, seed=5)
    net = f.network("run-0001")
    assert da.dims == ("time", "trajectory", "state") and da.shape == (11, 4, 3)
    np.testing.assert_array_equal(da.values, net.simulate(np.random.default_rng(5).normal(size=(4, 3)), t))
    np.testing.assert_array_equal(da["time"].values, t)
    assert da.attrs["network"] == "run-0001" and da.attrs["seed"] == 5 and da.attrs["dynamics"] == "store_linear"


def test_trajectory_file_round_trips_exactly_with_the_dynamics_labels(capsys, runs_file, tmp_path):
    out = tmp_path / "sim.h5"
    assert main(["--plugin", str(PLUGIN), "simulate", str(runs_file), "run-0003", "--t-max", "1", "--dt", "0.1",
                 "--n-init", "3", "--out", str(out)]) == 0
    capsys.readouterr()
    da = load_trajectories(out, plugins=PLUGINS)
    with h5py.File(out, "r") as raw:
        assert np.array_equal(da.values, raw["x"][()]) and np.array_equal(da["time"].values, raw["t"][()])
    assert da.attrs["network"] == "run-0003" and da.attrs["dynamics"] == "store_linear"
    assert da.dims == ("time", "trajectory", "state")


def test_labels_name_dims_entries_and_units():
    labels = Labels(time=Quantity("t", "ms"), state=Quantity("rate", "Hz"), axis="population", entries=("E", "I"))
    da = trajectories(labels, [0.0, 1.0], np.arange(8.0).reshape(2, 2, 2))
    assert da.dims == ("time", "trajectory", "population")
    assert da["population"].values.tolist() == ["E", "I"]
    assert da["time"].attrs == {"long_name": "t", "units": "ms"}
    assert (da.attrs["long_name"], da.attrs["units"]) == ("rate", "Hz")
    assert float(da.sel(population="I", trajectory=1, time=1.0)) == 7.0
    plain = trajectories(Labels(), [0.0], np.zeros((1, 1, 3)))  # undeclared: numbered entries, no units
    assert plain.dims == ("time", "trajectory", "state") and plain["state"].values.tolist() == [0, 1, 2]
    assert "units" not in plain.attrs and plain["time"].attrs == {"long_name": "time"}


def test_simulate_rejects_bad_arguments(runs_file):
    net = tcnet.open(runs_file, plugins=PLUGINS).network("run-0001")
    with pytest.raises(tcnet.ConfigError, match="simulate: n must be"):
        simulate(net, [0.0, 1.0], n=0)
    with pytest.raises(tcnet.ConfigError, match="simulate: t must be a 1-D array"):
        simulate(net, [[0.0, 1.0]])


def test_opening_reads_nothing_and_a_history_reads_one_run(runs_file, monkeypatch):
    reads = []
    real = store.read_run

    def counting(path, run_id, **kw):
        reads.append(run_id)
        return real(path, run_id, **kw)

    monkeypatch.setattr(store, "read_run", counting)
    monkeypatch.setattr(store.tables, "read_run", counting)
    f = tcnet.open(runs_file, plugins=PLUGINS)
    assert reads == []
    f.history("run-0004")
    assert reads == ["run-0004"]
    tables = []
    real_table = store.tables.table_records
    monkeypatch.setattr(store.tables, "table_records", lambda path, plugins: tables.append(path) or
                        real_table(path, plugins))
    f.runs
    f.groups
    f.runs
    assert tables == [runs_file]  # the table reads the file once, then is kept
    assert set(reads[1:]) <= set(f.run_ids) and len(reads[1:]) == len(set(reads[1:]))  # runs without a row: once


def test_not_a_tcnet_file_is_one_clear_error(tmp_path):
    path = tmp_path / "other.h5"
    with h5py.File(path, "w") as raw:
        raw.attrs["format"] = "something"
    with pytest.raises(store.StoreError, match="not a tcnet file"):
        tcnet.open(path)
    with pytest.raises(store.StoreError, match="not a tcnet-trajectories file"):
        load_trajectories(path)


def test_grid_is_the_study_table_indexed_by_the_swept_keys(tmp_path, capsys):
    study_file = tmp_path / "grid.toml"
    study_file.write_text(f"""
[study]
name = "grid"
repeats = 2
plugins = ["{PLUGIN}"]
[base]
dynamics = {{name = "store_linear", N = 3}}
loss = [{{name = "store_bowl"}}]
optimizer = {{name = "adam", steps = 3}}
[grid]
"dynamics.N" = [2, 3]
"optimizer.lr" = [0.01, 0.02]
""")
    study = Study.from_toml(study_file)
    path = tmp_path / "grid.h5"
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        study.run(path, pool, progress=False)
    grid = tcnet.open(path).grid(study_file)
    assert grid.index.names == ["dynamics.N", "optimizer.lr"]
    assert main(["study", str(study_file), "-o", str(path), "--summary", "--csv", "-"]) == 0
    expected = pd.read_csv(io.StringIO(capsys.readouterr().out)).set_index(["dynamics.N", "optimizer.lr"])
    pd.testing.assert_frame_equal(grid, expected)
    assert grid.loc[(3, 0.02), "n"] == 2


def test_history_extra_columns_are_the_stored_ones(tmp_path):
    """An optimizer's extra columns (the E/I learning rules record the rates E, I, ...) come back
    as extra/<key>, bit for bit; a single-stage optimizer names stage 0 after itself."""
    path = tmp_path / "ei.h5"
    spec = {"dynamics": {"name": "ei_rate", "preset": "paradoxical"}, "loss": [{"name": "homeostatic"}],
            "optimizer": {"name": "cross_homeostatic", "steps": 5}}
    tcnet.run(spec, recorders=[RunWriter(path, "ei")], progress=False)
    h = tcnet.open(path).history("ei")
    with h5py.File(path, "r") as raw:
        extra = raw["runs/ei/history/extra"]
        assert sorted(c for c in h.columns if c.startswith("extra/")) == sorted(f"extra/{k}" for k in extra)
        for key in extra:
            assert np.array_equal(h[f"extra/{key}"].to_numpy(), extra[key][()], equal_nan=True), key
    assert set(h["stage_name"]) == {"cross_homeostatic"} and "extra/E" in h
