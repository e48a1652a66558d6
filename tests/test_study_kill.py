"""`tcnet study` killed with SIGKILL at random points (the driver and its workers at once, as when
a node is lost) leaves a file that reads; every run it holds as finished is bit-identical to the
same run of an uninterrupted study; and running the study again finishes the rest, so that the
file ends identical to an uninterrupted study's. Also under CPU load (8 busy processes on the test
machine's 2 cores), where a regression of the store's full-disk guard left killed files unreadable
('len not positive after adjustment for EOA') while passing on an idle machine."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from tcnet.store import list_runs, read_run
from tcnet.store.hdf5 import reading
from tcnet.study import Study, stored
from test_store_kill import cpu_burners, kill_after_changes

PLUGIN = Path(__file__).parent / "plugins_for_tests" / "store_linear.py"
STUDY = f'''[study]
name = "killed"
seed = 5
repeats = 5
plugins = ["{PLUGIN}"]

[base.dynamics]
name = "store_linear"
N = 4

[[base.loss]]
name = "store_bowl"
delay = 0.002

[base.optimizer]
name = "adam"
steps = 60
lr = 0.02

[grid]
"loss.store_bowl.c" = [0.1, 0.3, 0.5, 0.7]
'''


@pytest.fixture(scope="module")
def study_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("study") / "killed.toml"
    path.write_text(STUDY)
    return path


@pytest.fixture(scope="module")
def reference(study_file):
    """The study run once, uninterrupted: its runs by id."""
    path = study_file.with_name("reference.h5")
    report = Study.from_toml(study_file).run(path, workers=1, progress=False)
    assert len(report.done) == 20 and not report.failed
    return {rid: read_run(path, rid) for rid in list_runs(path)}


def assert_same_run(rec, ref):
    """Bit-identical: spec, status, networks and every history column but the wall clock."""
    assert rec.spec == ref.spec and rec.status == ref.status == "finished" and rec.steps == ref.steps
    for name in ("initial_data", "final_data"):
        mine, theirs = getattr(rec, name).arrays, getattr(ref, name).arrays
        assert mine.keys() == theirs.keys() and all(np.array_equal(mine[k], theirs[k]) for k in mine)
    assert set(rec.history) == set(ref.history)
    for k in rec.history:
        if k != "wall_time":
            assert np.array_equal(rec.history[k], ref.history[k]), k


def read_everything(path, plain=False):
    """Every group, dataset and attribute the file links to reads: as tcnet reads a file whose
    writer was killed inside a flush (`tcnet.store.superblock`), or with `plain` as h5py itself
    reads it (once a writer has repaired it)."""
    def read(name, obj):
        dict(obj.attrs)
        if isinstance(obj, h5py.Dataset):
            obj[()]

    with (h5py.File(path, "r") if plain else reading(path)) as f:
        dict(f.attrs)
        f.visititems(read)


def kill_and_finish(study_file, reference, path, workers, kills, seed):
    """Start the study `kills` times and SIGKILL it (driver and workers) at a random point of its
    writing: right after its k-th change to the file (k random, larger in later trials so that the
    study progresses), when the driver is most likely in the middle of writing the next run; check
    the file after each kill; then run it to the end."""
    rng = np.random.default_rng(seed)
    cli = [sys.executable, "-m", "tcnet.cli", "study", str(study_file), "-o", str(path), "--workers",
           str(workers), "--no-progress"]
    study = Study.from_toml(study_file)
    for trial in range(kills):
        log = path.with_name(f"driver{trial}.err")
        with open(log, "w") as err:
            driver = subprocess.Popen(cli, stdout=subprocess.DEVNULL, stderr=err, start_new_session=True)
        kill_after_changes(driver, path, rng.integers(1, 12) + 10 * trial, rng)  # later, as it goes on
        # the driver went on from the previous kill's file without an error (or was killed)
        assert driver.returncode in (0, -signal.SIGKILL), (trial, log.read_text())
        read_everything(path)
        for rid in list_runs(path):  # every run reads
            rec = read_run(path, rid)
            if rec.status == "finished":
                base, _, attempt = rid.rpartition(".")  # '<planned id>.<k>' is its k-th attempt
                assert_same_run(rec, reference[base if attempt.isdigit() and base else rid])
            else:
                assert rec.status == "interrupted", (trial, rid, rec.status)
    report = study.run(path, workers=workers, progress=False)
    read_everything(path, plain=True)
    best = stored(path, study.runs())
    assert sorted(best) == sorted(reference) and report.skipped + len(report.done) == 20
    for rid, (rec, _) in best.items():
        assert_same_run(rec, reference[rid])
    return report


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_sigkill_during_study(study_file, reference, tmp_path, workers):
    report = kill_and_finish(study_file, reference, tmp_path / "killed.h5", workers, kills=6, seed=workers)
    assert report.skipped > 0  # the killed attempts' finished runs were kept, not redone


@pytest.mark.slow
def test_sigkill_during_study_under_cpu_load(study_file, reference, tmp_path):
    with cpu_burners(8):
        kill_and_finish(study_file, reference, tmp_path / "killed.h5", 2, kills=8, seed=3)
