"""A writer killed with SIGKILL mid-optimization leaves a readable file; the run resumes exactly.
The random-kill tests run idle and again under CPU load (`cpu_burners`): a writer slowed down by
other processes is caught at other points of a write, and a regression that left killed files
unreadable passed idle and failed under load."""
import json
import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

import tcnet
from tcnet import store
from tcnet.plugins import Registry
from tcnet.resume import resume
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


def wait_for_steps(worker, path, n, timeout=120):
    """Until the worker's run 'victim' has `n` steps in the file (a loaded machine starts it late)."""
    deadline = time.monotonic() + timeout
    steps = 0
    while steps < n:
        assert worker.poll() is None, "the worker ended before it was killed"
        assert time.monotonic() < deadline, f"the worker flushed fewer than {n} steps in {timeout} s"
        time.sleep(0.05)
        if path.exists():
            try:
                steps = store.read_run(path, "victim", plugins=PLUGINS).steps
            except store.StoreError as err:  # the run group is not created yet
                assert "no run 'victim'" in str(err)


def test_sigkill_mid_adam_then_resume(tmp_path):
    path = tmp_path / "killed.h5"
    worker = subprocess.Popen([sys.executable, str(HERE / "store_kill_worker.py"), str(path),
                               json.dumps(chain(delay=0.01)), "10"])
    try:
        wait_for_steps(worker, path, 40)
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

    resume(path, "victim", plugins=PLUGINS)
    done = store.read_run(path, "victim", plugins=PLUGINS)
    assert done.status == "finished" and list(done.attrs["resumed_at"]) == [n - 1]
    assert np.array_equal(done.history["step"], np.arange(done.steps))
    final, expected = done.history["loss"][-1], ref.history.column("loss")[-1]
    assert abs(final - expected) <= 1e-10 * abs(expected)
    # Adam continues bitwise from its saved moments, and L-BFGS then starts from the same point
    assert np.array_equal(done.history["loss"], ref.history.column("loss"))
    assert np.array_equal(done.final.arrays["J"], ref.final.arrays["J"])
    assert not Path(str(path) + ".lock").exists()


@contextmanager
def cpu_burners(n: int):
    """`n` child processes that keep the CPUs busy while the block runs; ended (by pid) after it."""
    burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]
    try:
        yield
    finally:
        for burner in burners:
            burner.kill()
            burner.wait()


def kill_after_changes(proc, path, changes, rng):
    """SIGKILL the process and its session (start it with start_new_session=True) right after its
    `changes`-th change to the file (size or modification time): likely inside its next write."""
    try:
        seen, deadline = None, time.monotonic() + 120
        while changes and proc.poll() is None:
            assert time.monotonic() < deadline, f"{path} did not change for 120 s"
            stat = path.stat() if path.exists() else None
            now = stat and (stat.st_size, stat.st_mtime_ns)
            if now != seen:
                changes, seen = changes - 1, now
            time.sleep(0.001)
        time.sleep(rng.uniform(0, 0.02))
    finally:
        if proc.poll() is None:  # not ended (and reaped) on its own
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@pytest.mark.slow
def test_sigkill_while_runs_are_created_under_cpu_load(tmp_path):
    """`tcnet train` writing one short run after another (new groups and datasets in the file each
    time), killed right after a random change to its file, under CPU load: every run reads, and the
    next train appends to the file. (A full-disk guard that left the file longer than HDF5's end of
    allocation made such files unreadable: 'len not positive after adjustment for EOA'.)"""
    rng = np.random.default_rng(2)
    path = tmp_path / "runs.h5"
    train = [sys.executable, "-m", "tcnet.cli", "train", "-N", "4", "-F", "0.5", "-A", "2", "-L", "1", "-k", "500", "-f",
             str(path), "--no-progress"]
    with cpu_burners(8):
        for trial in range(10):
            before = store.list_runs(path) if path.exists() else []
            with open(tmp_path / f"train{trial}.err", "w") as err:
                proc = subprocess.Popen(train, stdout=subprocess.DEVNULL, stderr=err, start_new_session=True)
            kill_after_changes(proc, path, rng.integers(1, 20), rng)
            assert proc.returncode == -signal.SIGKILL, (tmp_path / f"train{trial}.err").read_text()
            runs = store.list_runs(path)
            assert runs[:len(before)] == before, trial
            for run_id in runs:
                rec = store.read_run(path, run_id)
                assert rec.status in ("finished", "interrupted"), (trial, run_id, rec.status)


@pytest.mark.slow
def test_sigkill_at_random_times_never_corrupts(tmp_path):
    kill_at_random_times(tmp_path, trials=20, seed=0)


@pytest.mark.slow
def test_sigkill_at_random_times_under_cpu_load_never_corrupts(tmp_path):
    with cpu_burners(8):
        kill_at_random_times(tmp_path, trials=12, seed=1)


def kill_at_random_times(tmp_path, trials, seed):
    """Flushing after every step keeps the writer inside the open/append/close window most of the
    time (no evaluation delay), so random SIGKILLs hit it mid-flush; every file must still read
    back interrupted with a contiguous history ending at its checkpoint, and the checkpoint must
    belong to that step (before the two-phase commit, 6 of 25 such kills left x of a newer step);
    and the next writer can add to the file."""
    rng = np.random.default_rng(seed)
    spec = chain(delay=0.0)
    spec["optimizer"] = {"name": "adam", "steps": 10**6, "lr": 0.01}
    for trial in range(trials):
        path = tmp_path / f"{trial}.h5"
        worker = subprocess.Popen([sys.executable, str(HERE / "store_kill_worker.py"), str(path),
                                   json.dumps(spec), "1"])
        try:
            wait_for_steps(worker, path, 1)  # its first commit (late on a loaded machine), then a random moment
            time.sleep(rng.random())
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
        store.save_network(path, "next", PLUGINS.get("dynamics", "store_linear").create())
        assert store.read_run(path, "victim", plugins=PLUGINS).steps == rec.steps


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
    wait_for_steps(worker, path, 20)
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
        resume(path, "victim", plugins=PLUGINS)
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
