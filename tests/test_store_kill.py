"""A writer killed with SIGKILL mid-optimization leaves a readable file; the run resumes exactly."""
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import tcnet
from tcnet import store
from tcnet.plugins import Registry
from tcnet.store import FileBusyError

HERE = Path(__file__).parent / "plugins_for_tests"
PLUGINS = Registry(files=[HERE / "store_linear.py"])
ADAM_STEPS = 300


def chain(delay):
    """Adam then L-BFGS on the 16-parameter bowl; `delay` (s per evaluation) changes no value."""
    return {"dynamics": {"name": "store_linear", "seed": 11, "N": 4},
            "loss": [{"name": "store_bowl", "c": 0.3, "delay": delay}],
            "optimizer": {"name": "staged", "stages": [{"name": "adam", "steps": ADAM_STEPS, "lr": 0.02},
                                                      {"name": "lbfgs", "gtol": 1e-10}]}}


def test_sigkill_mid_adam_then_resume(tmp_path):
    path = tmp_path / "killed.h5"
    worker = subprocess.Popen([sys.executable, str(HERE / "store_kill_worker.py"), str(path),
                               json.dumps(chain(delay=0.01)), "10"])
    try:
        deadline = time.monotonic() + 30
        steps = 0
        while steps < 40:
            assert worker.poll() is None, "the worker ended before it was killed"
            assert time.monotonic() < deadline, "the worker flushed no steps in 30 s"
            time.sleep(0.05)
            if path.exists():
                try:
                    steps = store.read_run(path, "victim", plugins=PLUGINS).steps
                except store.StoreError as err:  # the run group is not created yet
                    assert "no run 'victim'" in str(err)
        # while it runs, the file refuses a second writer, naming the live one
        with pytest.raises(FileBusyError, match=f"run 'victim', pid {worker.pid} on host"):
            store.save_network(path, "n", PLUGINS.get("dynamics", "store_linear").create())
        assert store.read_run(path, "victim", plugins=PLUGINS).status == "running"
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait()
    assert worker.returncode == -signal.SIGKILL

    rec = store.read_run(path, "victim", plugins=PLUGINS)
    assert rec.status == "interrupted" and "stopped without closing the run" in rec.message
    h = rec.history
    n = rec.steps
    assert 40 <= n < ADAM_STEPS and np.all(h["stage"] == 0)  # killed mid-Adam
    assert np.array_equal(h["step"], np.arange(n)) and rec.checkpoint.step == n - 1
    assert all(len(v) == n for v in h.values()) and np.all(np.diff(h["wall_time"]) > 0)

    ref = tcnet.run(chain(delay=0.0), progress=False, plugins=PLUGINS)  # uninterrupted, same seed
    assert np.array_equal(h["loss"], ref.history.column("loss")[:n])  # the flushed history is intact

    store.resume(path, "victim", plugins=PLUGINS)
    done = store.read_run(path, "victim", plugins=PLUGINS)
    assert done.status == "finished" and list(done.attrs["resumed_at"]) == [n - 1]
    assert np.array_equal(done.history["step"], np.arange(done.steps))
    final, expected = done.history["loss"][-1], ref.history.column("loss")[-1]
    assert abs(final - expected) <= 1e-10 * abs(expected)
    # Adam continues bitwise from its saved moments, and L-BFGS then starts from the same point
    assert np.array_equal(done.history["loss"], ref.history.column("loss"))
    assert np.array_equal(done.final.arrays["J"], ref.final.arrays["J"])
    assert not Path(str(path) + ".lock").exists()


@pytest.mark.slow
def test_sigkill_at_random_times_never_corrupts(tmp_path):
    """Flushing after every step keeps the writer inside the open/append/close window most of the
    time (no evaluation delay), so random SIGKILLs hit it mid-flush; every file must still read
    back interrupted with a contiguous history ending at its checkpoint, and the checkpoint must
    belong to that step (before the two-phase commit, 6 of 25 such kills left x of a newer step)."""
    rng = np.random.default_rng(0)
    spec = chain(delay=0.0)
    spec["optimizer"] = {"name": "adam", "steps": 10**6, "lr": 0.01}
    for trial in range(20):
        path = tmp_path / f"{trial}.h5"
        worker = subprocess.Popen([sys.executable, str(HERE / "store_kill_worker.py"), str(path),
                                   json.dumps(spec), "1"])
        try:
            while not path.exists():
                assert worker.poll() is None
                time.sleep(0.01)
            time.sleep(0.5 + rng.random())
        finally:
            worker.send_signal(signal.SIGKILL)
            worker.wait()
        rec = store.read_run(path, "victim", plugins=PLUGINS)
        assert rec.status == "interrupted" and rec.steps > 0, trial
        assert np.array_equal(rec.history["step"], np.arange(rec.steps)) and rec.checkpoint.step == rec.steps - 1
        # the checkpoint belongs to its step: Adam's counter, and the loss recomputed at its x
        J = rec.checkpoint.x.reshape(4, 4)
        assert rec.checkpoint.opt_state["t"] == rec.checkpoint.step
        assert np.sum((J - 0.3) ** 2) + 0.1 * np.sum(np.sin(3 * J)) == pytest.approx(rec.history["loss"][-1], rel=1e-14)


@pytest.mark.slow
def test_sigkill_during_resume_and_simulate_out(tmp_path):
    """`tcnet resume` killed at random times leaves a file that reads back interrupted at a
    consistent checkpoint, and resuming again ends exactly where one uninterrupted run ends;
    `tcnet simulate --out` killed at random times leaves the trajectory file complete or absent
    (it is written under a temporary name and renamed)."""
    rng = np.random.default_rng(1)
    spec = chain(delay=0.002)
    path = tmp_path / "runs.h5"
    worker = subprocess.Popen([sys.executable, str(HERE / "store_kill_worker.py"), str(path), json.dumps(spec), "5"])
    time.sleep(2.0)
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    cli = [sys.executable, "-m", "tcnet.cli", "--plugin", str(HERE / "store_linear.py")]
    for trial in range(5):
        resumer = subprocess.Popen([*cli, "resume", str(path), "victim", "--no-progress"], stdout=subprocess.DEVNULL)
        time.sleep(1.5 + rng.random())
        resumer.send_signal(signal.SIGKILL)
        resumer.wait()
        rec = store.read_run(path, "victim", plugins=PLUGINS)
        if rec.status == "finished":
            break
        assert rec.status == "interrupted" and rec.checkpoint.step == rec.steps - 1, trial
        assert np.array_equal(rec.history["step"], np.arange(rec.steps))
    if rec.status != "finished":
        store.resume(path, "victim", plugins=PLUGINS)
    done, ref = store.read_run(path, "victim", plugins=PLUGINS), tcnet.run(chain(0.0), progress=False, plugins=PLUGINS)
    assert np.array_equal(done.history["loss"], ref.history.column("loss"))
    assert np.array_equal(done.final.arrays["J"], ref.final.arrays["J"])

    for trial in range(10):
        out = tmp_path / f"traj{trial}.h5"
        sim = subprocess.Popen([*cli, "simulate", str(path), "victim", "--n-init", "200", "--dt", "0.001",
                                "--out", str(out)], stdout=subprocess.DEVNULL)
        time.sleep(1.0 + 2 * rng.random())
        sim.send_signal(signal.SIGKILL)
        sim.wait()
        if out.exists():
            t, x, attrs = store.read_trajectories(out)
            assert x.shape == (len(t), 200, 4) and attrs["network"] == "victim", trial
