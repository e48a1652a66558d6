"""A rate network trained from the command line (`tcnet run SPEC.toml`) on a two-condition task,
stored, reloaded with its task, simulated on new conditions (`tcnet simulate --inputs`) and read
back as labelled arrays (`tcnet.open(...).simulate_task`)."""
import numpy as np
import pytest

import tcnet
from tcnet.cli import main
from tcnet.reader import load_trajectories
from tcnet.task import Task
from tcnet_plugins.rnn.tasks import motif

SPEC = """
[dynamics]
name = "rate_network"
seed = 0
N = 20
g = 1.2
task = "task.npz"

[[loss]]
name = "readout"

[[loss]]
name = "energy"
weight = 1e-3

[optimizer]
name = "lbfgs"
max_iter = 200
"""


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("rnn")
    motif(conditions=2).save(folder / "task.npz")
    (folder / "spec.toml").write_text(SPEC)
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(folder)  # the task path is relative to the working directory
        assert main(["run", "spec.toml"]) == 0
    return folder


def test_trained_from_the_cli_the_readout_error_is_below_one_percent_of_the_target_variance(trained):
    f = tcnet.open(trained / "spec.h5")
    (run,) = f.run_ids
    ds = f.simulate_task(run)
    task = Task.read(trained / "task.npz")
    w = task.weights
    error = np.sum(w * (ds["y"].values - task.targets) ** 2) / np.sum(w)
    variance = np.sum(w * (task.targets - np.sum(w * task.targets) / np.sum(w)) ** 2) / np.sum(w)
    assert error < 0.01 * variance
    assert f.network(run).summary()["readout_error"] == pytest.approx(error / variance, rel=1e-9)


def test_a_stored_network_reloads_with_its_task_and_simulates_the_same(trained):
    f = tcnet.open(trained / "spec.h5")
    run = f.run_ids[0]
    net = f.network(run)
    assert np.array_equal(net.data["task_u"], Task.read(trained / "task.npz").u)
    again = f.network(run)
    x0 = net.sample_initial(2)
    u = net.task.inputs
    assert np.array_equal(net.simulate(x0, net.task.t, u), again.simulate(x0, net.task.t, u))
    ds = f.simulate_task(run)
    assert ds["x"].dims == ("time", "condition", "unit") and ds["y"].dims == ("time", "condition", "output")
    assert ds["x"].shape == (len(net.task.t), 2, 20)
    assert ds["time"].attrs["units"] == "s"


def test_tcnet_simulate_runs_a_task_file_s_conditions(trained, capsys):
    new = motif(conditions=2, amplitude=0.3)
    x0 = np.random.default_rng(0).normal(scale=0.1, size=(2, 20))
    Task(new.t, new.u, new.target, x0=x0).save(trained / "new.npz")
    out = trained / "sim.h5"
    assert main(["simulate", str(trained / "spec.h5"), "run-0001", "--inputs", str(trained / "new.npz"),
                 "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "2 conditions of the task" in text and "readout MSE" in text
    da = load_trajectories(out)
    net = tcnet.open(trained / "spec.h5").network("run-0001")
    assert np.array_equal(da.values, net.simulate(x0, new.t, new.inputs))


def test_a_task_for_a_dynamics_without_inputs_is_one_line(trained, tmp_path, capsys):
    spec = {"dynamics": {"name": "linear_decay", "N": 10}, "loss": [{"name": "decay"}],
            "optimizer": {"name": "adam", "steps": 1}}
    from tcnet.store import RunWriter
    tcnet.run(spec, recorders=[RunWriter(tmp_path / "ld.h5")], progress=False)
    assert main(["simulate", str(tmp_path / "ld.h5"), "run-0001", "--inputs", str(trained / "task.npz")]) == 2
    assert "the network has no inputs" in capsys.readouterr().err
