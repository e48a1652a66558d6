"""The store's command-line tools: tcnet show, simulate and compare; and the one opening path of
every file tcnet creates besides stores (trajectories, data sets, figures, tables),
tcnet.store.new_file: an existing file is never replaced unless forced, never while a tcnet writer
holds it, and a new file appears complete (written under a temporary name, then renamed) or not
at all."""
import csv
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

import tcnet
from tcnet import store
from tcnet.cli import main
from tcnet.plugins import Registry
from tcnet.spec import RunSpec
from tcnet.store import RunWriter, StoreError

PLUGIN = Path(__file__).parent / "plugins_for_tests" / "store_linear.py"
PLUGINS = Registry(files=[PLUGIN])
SPEC = {"dynamics": {"name": "store_linear", "seed": 2, "N": 3}, "loss": [{"name": "store_bowl"}],
        "optimizer": {"name": "adam", "steps": 10, "lr": 0.01}}


def tcnet_cli(capsys, *argv):
    code = main(["--plugin", str(PLUGIN), *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def runs_file(tmp_path):
    path = tmp_path / "runs.h5"
    Linear = PLUGINS.get("dynamics", "store_linear")
    store.save_network(path, "decay", Linear({"J": np.zeros((3, 3)), "w": np.ones(3)}, {"N": 3, "tau": 2.0}, 0))
    for lr in (0.01, 0.03):
        spec = {**SPEC, "optimizer": {"name": "adam", "steps": 10, "lr": lr}}
        tcnet.run(spec, recorders=[RunWriter(path)], progress=False, plugins=PLUGINS)
    return path


def test_show(capsys, runs_file):
    code, out, _ = tcnet_cli(capsys, "show", runs_file)
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == f"{runs_file}: format tcnet v4 (tcnet {tcnet.__version__})"
    assert lines[1:4] == ["networks/ (1)",
                          '  decay  dynamics=store_linear seed=0 config={"N": 3, "tau": 2.0}  J(3, 3) w(3,)',
                          "    spectral_abscissa=-0.5"]  # A = (0 - I)/2
    assert lines[4] == "runs/ (2)"
    rec = store.read_run(runs_file, "run-0002", plugins=PLUGINS)
    loss = f"{rec.history['loss'][-1]:.6g}"
    assert f"  run-0002  status=finished  steps=11  loss={loss}  dynamics=store_linear  optimizer=adam" in lines


def test_simulate_decay_times_and_output(capsys, runs_file, tmp_path):
    """J = 0, tau = 2: every trajectory is x0 exp(-t/2), so |x| falls to 1/e at t = 2 and to 0.1
    at t = 2 ln 10."""
    out_file = tmp_path / "traj.h5"
    code, out, _ = tcnet_cli(capsys, "simulate", runs_file, "decay", "--t-max", 6, "--dt", 0.05,
                             "--n-init", 4, "--seed", 7, "--out", out_file)
    assert code == 0
    assert "  spectral_abscissa = -0.5" in out
    rows = [line.split() for line in out.splitlines() if line.startswith("  ") and line.split()[0].isdigit()]
    assert len(rows) == 4
    for row in rows:
        assert float(row[3]) == pytest.approx(2.0, abs=1e-3) and float(row[4]) == pytest.approx(2 * np.log(10), abs=1e-3)
    assert ["traj", "|x(0)|", "|x(t_max)|", "t(1/e)", "t(0.1)"] in [line.split() for line in out.splitlines()]
    x0 = np.random.default_rng(7).normal(size=(4, 3))  # the test dynamics' sample_initial
    with h5py.File(out_file, "r") as f:
        # plain h5py: format version 2 strings are fixed-length UTF-8 (bytes; docs/FORMAT.md)
        assert f.attrs["format"] == b"tcnet-trajectories" and f.attrs["network"] == b"decay" and f.attrs["seed"] == 7
        t = f["t"][()]
        assert t.shape == (121,) and t[-1] == pytest.approx(6.0)
        np.testing.assert_allclose(f["x"][()], np.exp(-t / 2)[:, None, None] * x0, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(f["norms"][()], np.exp(-t / 2)[:, None] * np.linalg.norm(x0, axis=1), rtol=1e-12)
    assert out_file.with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_crossing_is_exact_for_exponential_decay():
    from tcnet_plugins.preparatory.analysis import crossing_time

    t = np.linspace(0, 5, 11)
    assert crossing_time(t, np.exp(-1.3 * t), 0.1) == pytest.approx(np.log(10) / 1.3, rel=1e-12)
    assert np.isnan(crossing_time(t, np.exp(-0.1 * t), 0.1))


def test_simulate_a_run_network(capsys, runs_file):
    code, out, _ = tcnet_cli(capsys, "simulate", runs_file, "run-0001/initial", "--n-init", 2, "--t-max", 1)
    assert code == 0 and "network run-0001/initial (store_linear" in out


@pytest.mark.parametrize("args, message", [
    (["--dt", 0], "tcnet simulate: --dt must be in (0, inf], got 0.0"),
    (["--t-max", -1], "tcnet simulate: --t-max must be in (0, inf], got -1.0"),
    (["--dt", 2, "--t-max", 1], "tcnet simulate: --dt must be at most --t-max (1), got 2"),
    (["--n-init", 0], "tcnet simulate: --n-init must be an integer in [1, inf], got 0"),
])
def test_simulate_bad_arguments(capsys, runs_file, args, message):
    code, _, err = tcnet_cli(capsys, "simulate", runs_file, "decay", *args)
    assert code == 2 and message in err.splitlines()


def test_simulate_bad_network(capsys, runs_file, tmp_path):
    code, _, err = tcnet_cli(capsys, "simulate", runs_file, "nope")
    assert code == 2 and f"tcnet simulate: {runs_file}: no network 'nope' (networks: decay; runs: run-0001, run-0002;" in err
    static = PLUGINS.get("dynamics", "store_static").create()
    store.save_network(runs_file, "static", static)
    code, _, err = tcnet_cli(capsys, "simulate", runs_file, "static")
    assert code == 2 and "tcnet simulate: dynamics 'store_static' has no time evolution to simulate" in err


def test_compare(capsys, runs_file, tmp_path):
    code, out, _ = tcnet_cli(capsys, "compare", runs_file)
    assert code == 0
    header, *rows = out.splitlines()
    assert header.split() == ["file", "run", "status", "optimizer.lr", "loss", "terms/store_bowl", "steps",
                              "evaluations", "wall_time", "summary/spectral_abscissa"]
    assert [r.split()[1:4] for r in rows] == [["run-0001", "finished", "0.01"], ["run-0002", "finished", "0.03"]]
    code, out, _ = tcnet_cli(capsys, "compare", runs_file, "--csv")
    parsed = list(csv.DictReader(out.splitlines()))
    for row, run_id in zip(parsed, ("run-0001", "run-0002")):
        rec = store.read_run(runs_file, run_id, plugins=PLUGINS)
        assert float(row["loss"]) == rec.history["loss"][-1] and int(row["steps"]) == 10
    bad = tmp_path / "bad.h5"
    bad.write_text("not hdf5")
    code, _, err = tcnet_cli(capsys, "compare", runs_file, bad)
    assert code == 2 and f"tcnet compare: {bad}: not an HDF5 file" in err


# --- files tcnet creates: tcnet.store.new_file ----------------------------------------------------
def test_simulate_out_refuses_to_replace_a_store(capsys, runs_file):
    """Before: `simulate --out` opened its output with mode "w" and destroyed the store."""
    before = runs_file.read_bytes()
    code, _, err = tcnet_cli(capsys, "simulate", runs_file, "run-0001", "--out", runs_file)
    assert code == 2
    assert err == f"tcnet simulate: {runs_file}: exists already; refusing to replace it (--force, or force=True, " \
                  "replaces it)\n"
    assert runs_file.read_bytes() == before
    assert store.read_run(runs_file, "run-0001", plugins=PLUGINS).status == "finished"


def test_simulate_out_refuses_an_existing_figure(capsys, runs_file, tmp_path):
    figure = tmp_path / "traj.png"
    figure.write_bytes(b"keep me")
    code, _, err = tcnet_cli(capsys, "simulate", runs_file, "run-0001", "--out", tmp_path / "traj.h5")
    assert code == 2 and f"{figure}: exists already" in err
    assert figure.read_bytes() == b"keep me" and not (tmp_path / "traj.h5").exists()  # refused before writing


def test_force_never_replaces_a_file_being_written(capsys, runs_file, tmp_path):
    """Before: with a run being written into the store, `simulate --out STORE` replaced the file
    under the writer, which lost the run. Now the writer lock refuses it, even with --force."""
    source = tmp_path / "other.h5"
    shutil.copy(runs_file, source)
    writer = RunWriter(runs_file, flush_steps=1)
    writer.start(RunSpec.from_dict(SPEC), None)
    try:
        before = runs_file.read_bytes()
        code, _, err = tcnet_cli(capsys, "simulate", source, "run-0001", "--out", runs_file, "--force")
        assert code == 2
        assert f"{runs_file}: another process is writing this file (run 'run-0003', pid" in err
        assert err.endswith("refusing to replace it\n") and err.count("\n") == 1
        assert runs_file.read_bytes() == before
    finally:
        writer.fail(KeyboardInterrupt())
    assert store.list_runs(runs_file) == ["run-0001", "run-0002", "run-0003"]


def test_simulate_out_never_replaces_its_own_source(capsys, runs_file):
    """Not even with --force, and not under another name (the trajectory file would replace the
    store it was simulated from)."""
    link = runs_file.with_name("link.h5")
    link.symlink_to(runs_file)
    before = runs_file.read_bytes()
    for out in (runs_file, link):
        code, _, err = tcnet_cli(capsys, "simulate", runs_file, "run-0001", "--out", out, "--force")
        assert code == 2 and err == (f"tcnet simulate: {out}: names {runs_file}, which this command reads or writes; "
                                     "refusing to replace it (choose another output file)\n")
    assert runs_file.read_bytes() == before


def test_force_replaces_a_file_nobody_writes(capsys, runs_file, tmp_path):
    out = tmp_path / "traj.h5"
    out.write_bytes(b"old")
    code, text, _ = tcnet_cli(capsys, "simulate", runs_file, "run-0001", "--out", out, "--force", "--n-init", 2)
    assert code == 0 and f"wrote {out} and {out.with_suffix('.png')}" in text
    assert out.read_bytes()[:8] == b"\x89HDF\r\n\x1a\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs.h5", "traj.h5", "traj.png"]  # no temporary left


@pytest.mark.parametrize("out, message", [
    ("traj.png", "simulate: --out must end in .h5 or .hdf5 (or have no extension, which adds .h5), "
                 "got '{dir}/traj.png'"),
    ("missing/traj.h5", "{dir}/missing/traj.h5: no directory {dir}/missing to create it in"),
    (".", "'{dir}': is a directory (expected a path to a file)"),
])
def test_simulate_out_oddities(capsys, runs_file, tmp_path, out, message):
    code, _, err = tcnet_cli(capsys, "simulate", runs_file, "run-0001", "--out", tmp_path / out)
    assert code == 2 and err.count("\n") == 1
    assert message.format(dir=tmp_path).replace("'", "") in err.replace("'", "")


def test_new_file_is_complete_or_absent(tmp_path):
    path = tmp_path / "table.csv"
    with store.new_file(path) as partial:
        partial.write_text("a,b\n")
        assert not path.exists() and partial.parent == tmp_path and partial.suffix == ".csv"
        assert (tmp_path / "table.csv.lock").exists()  # held like a store's writer lock
    assert path.read_text() == "a,b\n" and sorted(p.name for p in tmp_path.iterdir()) == ["table.csv"]
    with pytest.raises(RuntimeError), store.new_file(path, force=True) as partial:
        partial.write_text("half")
        raise RuntimeError("the writer failed")
    assert path.read_text() == "a,b\n" and sorted(p.name for p in tmp_path.iterdir()) == ["table.csv"]
    with pytest.raises(StoreError, match="exists already"), store.new_file(path):
        pass


def test_new_file_refuses_what_is_not_a_regular_file(tmp_path):
    import os
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(StoreError, match="not a regular file"), store.new_file(fifo, force=True):
        pass
    with pytest.raises(StoreError, match="is a directory"), store.new_file(tmp_path, force=True):
        pass


def test_trajectory_file_round_trip(tmp_path):
    t, x = np.linspace(0, 1, 5), np.arange(30.0).reshape(5, 2, 3)
    store.save_trajectories(tmp_path / "t.h5", t, x, source="s.h5", seed=3)
    import h5py
    with h5py.File(tmp_path / "t.h5", "r") as f:
        assert f.attrs["format"] == b"tcnet-trajectories" and f.attrs["format_version"] == 2 and f.attrs["seed"] == 3
        np.testing.assert_array_equal(f["x"][()], x)
        np.testing.assert_allclose(f["norms"][()], np.linalg.norm(x, axis=-1))
    with pytest.raises(StoreError, match="exists already"):
        store.save_trajectories(tmp_path / "t.h5", t, x)


def _flip_a_byte_of(path, dataset):
    """Overwrite one byte inside the first chunk of `dataset` (a real damage: below HDF5's checksum)."""
    import h5py
    with h5py.File(path, "r") as f:
        offset = f[dataset].id.get_chunk_info(0).byte_offset
    with open(path, "r+b") as fh:
        fh.seek(offset + 3)
        byte = fh.read(1)
        fh.seek(offset + 3)
        fh.write(bytes([byte[0] ^ 0xFF]))


def test_damaged_trajectory_and_data_files_are_refused_naming_the_object(tmp_path):
    """Trajectory files and SIMPL data sets are checksummed like stores (format version 2): a
    flipped byte is one StoreError naming the damaged dataset, never data."""
    from tcnet_plugins.simpl import data as simdata
    traj = tmp_path / "t.h5"
    store.save_trajectories(traj, np.linspace(0, 1, 50), np.ones((50, 4, 3)), source="s.h5", seed=3)
    bench = tmp_path / "bench.h5"
    simdata.save(bench, simdata.generate(seed=0, n_cells=5, duration=60.0))
    assert simdata.load(bench)["counts"].shape == (600, 5)
    for path, dataset, read in ((traj, "x", store.read_trajectories), (bench, "counts", simdata.load)):
        _flip_a_byte_of(path, dataset)
        with pytest.raises(StoreError, match=f"{path}: damaged file: /{dataset} cannot be read back intact"):
            read(path)


def test_simpl_generate_refuses_to_replace_a_store(capsys, runs_file):
    """Before: `simpl generate FILE` opened FILE with mode "w" and destroyed the store in it."""
    before = runs_file.read_bytes()
    code = main(["simpl", "generate", str(runs_file), "--cells", "5", "--duration", "10"])
    err = capsys.readouterr().err
    assert code == 2 and err == f"tcnet simpl: {runs_file}: exists already; refusing to replace it (--force, or " \
                                 "force=True, replaces it)\n"
    assert runs_file.read_bytes() == before


def test_simpl_generate_force(capsys, tmp_path):
    from tcnet_plugins.simpl import data as simdata
    path = tmp_path / "bench.h5"
    path.write_text("old")
    assert main(["simpl", "generate", str(path), "--cells", "5", "--duration", "10", "--force"]) == 0
    assert simdata.load(path)["counts"].shape == (int(10 / simdata.DEFAULTS["dt"]), 5)
