"""A run stopped by a full disk or by Ctrl-C ends in one line that says what is kept and how to go
on; earlier runs are intact, the run is interrupted, and `tcnet resume` finishes it exactly.

The full disk is a child process with a file size limit (RLIMIT_FSIZE, SIGXFSZ ignored): writes
past the limit fail with EFBIG as writes on a full device fail with ENOSPC, without root."""
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

import tcnet
from tcnet import store
from tcnet.plugins import Registry
from tcnet.store import RunWriter

PLUGIN = Path(__file__).parent / "plugins_for_tests" / "store_linear.py"
PLUGINS = Registry(files=[PLUGIN])
STEPS = 3000


def spec(steps=STEPS, delay=0.0):
    return {"dynamics": {"name": "store_linear", "seed": 5, "N": 12},
            "loss": [{"name": "store_bowl", "delay": delay}],
            "optimizer": {"name": "adam", "steps": steps, "lr": 0.001}}


class StopAt:
    """A recorder that presses Ctrl-C when step `k` is reported (after the writer has it)."""

    def __init__(self, k):
        self.k = k

    def start(self, spec, dynamics):
        pass

    def step(self, step):
        if step.step == self.k:
            raise KeyboardInterrupt

    def finish(self, result, final):
        pass


def interrupted_run(path, at, **kw):
    """run-0001 finished, run-0002 interrupted at step `at` (its checkpoint)."""
    tcnet.run(spec(200), recorders=[RunWriter(path)], progress=False, plugins=PLUGINS)
    try:
        tcnet.run(spec(**kw), recorders=[RunWriter(path, flush_steps=50), StopAt(at)], progress=False, plugins=PLUGINS)
    except KeyboardInterrupt as err:
        assert err.__notes__ == [f"run run-0002 is interrupted at step {at}: resume it with "
                                 f"`tcnet resume {path} run-0002`"]
    rec = store.read_run(path, "run-0002", plugins=PLUGINS)
    assert rec.status == "interrupted" and rec.checkpoint.step == at


def tcnet_cli(*argv, limit=None, **kw):
    """`tcnet --plugin store_linear.py ARGV` in a child process, optionally with a file size limit."""
    def limited():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return subprocess.Popen([sys.executable, "-m", "tcnet.cli", "--plugin", str(PLUGIN), *map(str, argv)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=limited if limit else None, **kw)


def test_full_disk_during_a_run(tmp_path):
    """Before: ~600 lines of h5py tracebacks and a segfault (exit 139); the run was left without
    its status."""
    path = tmp_path / "runs.h5"
    interrupted_run(path, at=100)
    before = store.read_run(path, "run-0001", plugins=PLUGINS)
    limit = path.stat().st_size + 400_000  # room for a few flushes of 50 rows, not for 3000 rows
    child = tcnet_cli("resume", path, "run-0002", "--no-progress", limit=limit)
    out, err = child.communicate(timeout=120)
    rec = store.read_run(path, "run-0002", plugins=PLUGINS)
    k = rec.checkpoint.step
    assert child.returncode == 2, err
    assert err == (f"tcnet resume: no space left on device writing {path} (File too large); runs before run-0002 "
                   f"are intact; run run-0002 is interrupted at step {k}: resume it with `tcnet resume {path} "
                   "run-0002` once there is space\n")
    assert 100 < k < STEPS and rec.status == "interrupted" and rec.steps == k + 1
    assert rec.attrs["resumed_at"].tolist() == [100]
    after = store.read_run(path, "run-0001", plugins=PLUGINS)
    assert after.status == "finished" and after.attrs == before.attrs
    for key, column in before.history.items():
        np.testing.assert_array_equal(after.history[key], column)
    # resumed with room, the run ends exactly where one uninterrupted run ends (Adam is bitwise)
    child = tcnet_cli("resume", path, "--all", "--no-progress")
    out, err = child.communicate(timeout=120)
    assert child.returncode == 0 and err == "" and f"run run-0002: max_steps at step {STEPS}" in out
    whole = tcnet.run(spec(), progress=False, plugins=PLUGINS)
    rec = store.read_run(path, "run-0002", plugins=PLUGINS)
    assert rec.status == "finished" and rec.steps == STEPS + 1
    np.testing.assert_array_equal(rec.history["loss"], whole.history.column("loss"))
    np.testing.assert_array_equal(rec.final.arrays["J"], whole.final.arrays["J"])


def test_ctrl_c_is_one_line_and_exit_130(tmp_path):
    path = tmp_path / "runs.h5"
    interrupted_run(path, at=60, delay=0.002)
    child = tcnet_cli("resume", path, "run-0002", "--no-progress")
    deadline = time.monotonic() + 60
    while store.read_run(path, "run-0002", plugins=PLUGINS).checkpoint.step < 150:  # it made progress
        assert child.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    child.send_signal(signal.SIGINT)
    out, err = child.communicate(timeout=60)
    rec = store.read_run(path, "run-0002", plugins=PLUGINS)
    assert child.returncode == 130
    assert err == (f"tcnet resume: interrupted; run run-0002 is interrupted at step {rec.checkpoint.step}: resume it "
                   f"with `tcnet resume {path} run-0002`\n")
    assert rec.status == "interrupted" and rec.steps == rec.checkpoint.step + 1
    assert rec.message == "KeyboardInterrupt"


def test_resume_command_arguments(tmp_path, capsys):
    from tcnet.cli import main
    path = tmp_path / "runs.h5"
    tcnet.run(spec(20), recorders=[RunWriter(path)], progress=False, plugins=PLUGINS)
    cli = ["--plugin", str(PLUGIN), "resume", str(path)]
    assert main(cli) == 2
    assert capsys.readouterr().err == "tcnet resume: give either RUN or --all (every interrupted run of FILE)\n"
    assert main(cli + ["run-0001"]) == 2
    assert capsys.readouterr().err == (f"tcnet resume: {path}: run 'run-0001' cannot be resumed (expected status "
                                       "interrupted or failed, found finished)\n")
    assert main(cli + ["--all"]) == 0 and capsys.readouterr().out == f"{path}: no interrupted runs\n"
