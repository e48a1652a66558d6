"""The store's command-line tools: tcnet show, simulate and compare."""
import csv
from pathlib import Path

import h5py
import numpy as np
import pytest

import tcnet
from tcnet import store
from tcnet.cli import main
from tcnet.plugins import Registry
from tcnet.store import RunWriter

PLUGIN = Path(__file__).parent / "plugins_for_tests" / "store_linear.py"
PLUGINS = Registry(files=[PLUGIN])


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
        spec = {"dynamics": {"name": "store_linear", "seed": 2, "N": 3}, "loss": [{"name": "store_bowl"}],
                "optimizer": {"name": "adam", "steps": 10, "lr": lr}}
        tcnet.run(spec, recorders=[RunWriter(path)], progress=False, plugins=PLUGINS)
    return path


def test_show(capsys, runs_file):
    code, out, _ = tcnet_cli(capsys, "show", runs_file)
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == f"{runs_file}: format tcnet v1 (tcnet {tcnet.__version__})"
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
        assert f.attrs["format"] == "tcnet-trajectories" and f.attrs["network"] == "decay" and f.attrs["seed"] == 7
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
    assert header.split() == ["file", "run", "status", "optimizer.lr", "loss", "term.store_bowl", "iterations",
                              "evaluations", "wall_time", "final.spectral_abscissa"]
    assert [r.split()[1:4] for r in rows] == [["run-0001", "finished", "0.01"], ["run-0002", "finished", "0.03"]]
    code, out, _ = tcnet_cli(capsys, "compare", runs_file, "--csv")
    parsed = list(csv.DictReader(out.splitlines()))
    for row, run_id in zip(parsed, ("run-0001", "run-0002")):
        rec = store.read_run(runs_file, run_id, plugins=PLUGINS)
        assert float(row["loss"]) == rec.history["loss"][-1] and int(row["iterations"]) == 10
    bad = tmp_path / "bad.h5"
    bad.write_text("not hdf5")
    code, _, err = tcnet_cli(capsys, "compare", runs_file, bad)
    assert code == 2 and f"tcnet compare: {bad}: not an HDF5 file" in err
