"""Files tcnet creates besides stores (trajectories, data sets, figures, tables) go through one
opening path, tcnet.store.new_file: an existing file is never replaced unless forced, never while
a tcnet writer holds it, and a new file appears complete (written under a temporary name, then
renamed) or not at all."""
from pathlib import Path

import numpy as np
import pytest

import tcnet
from tcnet import store
from tcnet.cli import main
from tcnet.plugins import Registry
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
    tcnet.run(SPEC, recorders=[RunWriter(path)], progress=False, plugins=PLUGINS)
    return path


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


def test_force_never_replaces_a_file_being_written(capsys, runs_file):
    """Before: with a run being written into the store, `simulate --out STORE` replaced the file
    under the writer, which lost the run. Now the writer lock refuses it, even with --force."""
    writer = RunWriter(runs_file, flush_steps=1)
    writer.start(_spec(), None)
    try:
        before = runs_file.read_bytes()
        code, _, err = tcnet_cli(capsys, "simulate", runs_file, "run-0001", "--out", runs_file, "--force")
        assert code == 2
        assert f"{runs_file}: another process is writing this file (run 'run-0002', pid" in err
        assert err.endswith("refusing to replace it\n") and err.count("\n") == 1
        assert runs_file.read_bytes() == before
    finally:
        writer.fail(KeyboardInterrupt())
    assert store.list_runs(runs_file) == ["run-0001", "run-0002"]


def _spec():
    from tcnet.run import RunSpec
    return RunSpec.from_dict(SPEC)


def test_force_replaces_a_file_nobody_writes(capsys, runs_file, tmp_path):
    out = tmp_path / "traj.h5"
    out.write_bytes(b"old")
    code, text, _ = tcnet_cli(capsys, "simulate", runs_file, "run-0001", "--out", out, "--force", "--n-init", 2)
    assert code == 0 and f"wrote {out} and {out.with_suffix('.png')}" in text
    assert out.read_bytes()[:8] == b"\x89HDF\r\n\x1a\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs.h5", "traj.h5", "traj.png"]  # no temporary left


@pytest.mark.parametrize("out, message", [
    ("traj.png", "simulate: --out names the trajectory file (HDF5, e.g. traj.h5; its figure goes to FILE.png), "
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
        assert f.attrs["format"] == "tcnet-trajectories" and f.attrs["seed"] == 3
        np.testing.assert_array_equal(f["x"][()], x)
        np.testing.assert_allclose(f["norms"][()], np.linalg.norm(x, axis=-1))
    with pytest.raises(StoreError, match="exists already"):
        store.save_trajectories(tmp_path / "t.h5", t, x)


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
    assert simdata.load(path)["Y"].shape == (int(10 / simdata.DEFAULTS["dt"]), 5)
