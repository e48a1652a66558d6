"""A reader holding the store open while a run is written (issue 27, item 8): HDF5 takes a shared
lock on every file it opens, so a notebook's `h5py.File` keeps the writer out. Before, the writer
tried again at every step once a flush was due, waiting FLUSH_WAIT (0.5 s) each time: a 6000-step
run took 46 s instead of 15 s. Now it warns once, naming the reader's process, keeps the steps in
memory, tries again after BUSY_RETRY seconds (or flush_seconds, if longer), and commits every step
once the reader is gone."""
import subprocess
import sys
import warnings

import pytest

import tcnet
from tcnet import store
from tcnet.store import writer as writer_module

STEPS = 40
READER = "import h5py, sys, time; f = h5py.File(sys.argv[1], 'r'); print('open', flush=True); time.sleep(600)"


class Reader:
    """A recorder that opens the file in another process at step 1 (after the run's first flush)
    and closes it at the last step, before the run finishes."""

    def __init__(self, path):
        self.path, self.proc = path, None

    def start(self, spec, dynamics):
        pass

    def step(self, step):
        if step.step == 1:
            self.proc = subprocess.Popen([sys.executable, "-c", READER, str(self.path)], stdout=subprocess.PIPE,
                                         text=True)
            assert self.proc.stdout.readline() == "open\n"
        if step.step == STEPS:
            self.close()

    def finish(self, result, final):
        pass

    def close(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def test_a_reader_holding_the_file_costs_one_try_and_one_warning(tmp_path, monkeypatch):
    path = tmp_path / "runs.h5"
    monkeypatch.setattr(writer_module, "FLUSH_WAIT", 0.05)  # each try's wait for the reader (0.5 s in use)
    tries = []
    real = writer_module.writing

    def counted(p, wait=None, reserve=0):
        tries.append(wait)
        return real(p, wait, reserve)

    monkeypatch.setattr(writer_module, "writing", counted)
    writer = store.RunWriter(path, flush_steps=1, flush_seconds=1000.0)
    reader = Reader(path)
    spec = {"dynamics": {"name": "linear_decay", "N": 6, "seed": 1}, "loss": [{"name": "decay"}],
            "optimizer": {"name": "adam", "steps": STEPS}}
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            tcnet.run(spec, recorders=[writer, reader], progress=False)
    finally:
        reader.close()
    periodic = [w for w in tries if w == 0.05]
    # the flushes of steps 0 and 1 (the reader opens the file after the writer's flush of step 1),
    # step 2's (refused: the reader is in), and no other try while it stays: the next is
    # BUSY_RETRY (10 s) or flush_seconds away (before: a try at every step, 40)
    assert len(periodic) == 3, tries
    busy = [str(w.message) for w in caught if "is held open by" in str(w.message)]
    assert len(busy) == 1 and f"pid {reader.proc.pid} (" in busy[0] and "tries to flush them every 1000 s" in busy[0]
    rec = store.read_run(path, writer.run_id)
    assert rec.status == "finished" and list(rec.history["step"]) == list(range(STEPS + 1))


def test_holders_names_the_reader_and_nobody_once_it_is_gone(tmp_path):
    from tcnet.store.holders import holders

    path = tmp_path / "runs.h5"
    tcnet.run({"dynamics": {"name": "linear_decay", "N": 6, "seed": 1}, "loss": [{"name": "decay"}],
               "optimizer": {"name": "adam", "steps": 1}}, recorders=[store.RunWriter(path)], progress=False)
    if not holders.__globals__["_LOCKS"].exists():
        pytest.skip("no /proc/locks (not Linux)")
    assert holders(path) == []
    proc = subprocess.Popen([sys.executable, "-c", READER, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline() == "open\n"
        assert holders(path) == [f"pid {proc.pid} ({sys.executable} -c {READER}"[:57 + len(f'pid {proc.pid} (')] + "...)"]
    finally:
        proc.kill()
        proc.wait()
    assert holders(path) == []
