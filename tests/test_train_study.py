"""`tcnet train` is a study (tcnet.study): its file keeps the study, so `tcnet.open(FILE).grid()`
reads it; a train killed on the way resumes its unstarted runs without duplicates; and every table
of its runs (`tcnet compare --csv` and `--group --csv`, the study table, `tcnet.open(...).runs`,
`.groups`, `.grid()`) names the same numbers with the same columns and status words."""
import csv
import io
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import tcnet
from tcnet import store
from tcnet.cli import main
from tcnet.status import STORED, Status
from tcnet.study import Study, stored

TRAIN = ["train", "-N", "12", "-F", "0.25", "-b", "0 0.01", "-A", "3", "-L", "3", "-r", "5", "--no-progress"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """`tcnet train -k 3` over two betas: 6 runs in one file."""
    path = tmp_path_factory.mktemp("train") / "train.h5"
    assert main([*TRAIN, "-k", "3", "-f", str(path)]) == 0
    return path


def test_train_writes_a_study_that_grid_reads(trained, capsys):
    f = tcnet.open(trained)
    assert list(f.studies) == ["train"]
    study = Study.from_dict(f.studies["train"])
    assert study.repeats == 3 and study.seeds == "per-repeat" and len(study.runs()) == 6
    assert sorted(f.run_ids) == sorted(p.run_id for p in study.runs())
    grid = f.grid()
    assert grid.index.names == ["dynamics.N", "dynamics.n_frac", "loss.smoothness.weight"]
    assert grid["n"].tolist() == grid["finished"].tolist() == [3, 3] and grid["failed"].tolist() == [0, 0]
    # repeat k has seed r + k at both betas: the same initial networks
    assert [p.seed for p in study.runs()] == [5, 6, 7, 5, 6, 7]
    # the same command again: nothing to do, nothing added
    assert main([*TRAIN, "-k", "3", "-f", str(trained)]) == 0
    assert "6 runs: 6 already in the file, 0 done" in capsys.readouterr().out
    assert len(store.list_runs(trained)) == 6


def test_every_table_has_the_same_columns_and_status_words(trained, capsys):
    f = tcnet.open(trained)
    assert main(["compare", "--csv", str(trained)]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    runs = f.runs
    assert list(rows[0]) == list(runs.columns)
    metrics = ["loss", "terms/decay", "terms/stability", "terms/smoothness", "steps", "evaluations", "wall_time"]
    assert set(metrics) <= set(runs.columns) and "summary/t_1pct" in runs.columns
    assert {r["status"] for r in rows} == set(runs["status"]) == {Status.FINISHED}
    assert set(runs["status"]) <= set(STORED)  # the store's status words
    for r, (_, row) in zip(rows, runs.iterrows()):
        assert float(r["loss"]) == row["loss"] and float(r["summary/t_1pct"]) == row["summary/t_1pct"]

    assert main(["compare", "--group", "--csv", str(trained)]) == 0
    groups = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    grid = f.grid()
    table = Study.from_dict(f.studies["train"]).table(trained)
    counts = ["n", Status.FINISHED, Status.FAILED]
    assert table.columns[3:] == list(grid.columns)  # the study table is the grid, swept keys its index
    pooled = [c for c in grid.columns if c not in counts]
    assert {f"{m}:{s}" for m in metrics + ["summary/t_1pct"] for s in ("mean", "std")} <= set(pooled)
    assert [c for c in groups[0] if c in grid.columns] == counts + pooled  # same names, same order
    for g, (_, row) in zip(groups, grid.reset_index().iterrows()):
        assert float(g["loss.smoothness.weight"]) == row["loss.smoothness.weight"]
        for c in counts:
            assert int(g[c]) == row[c]
        for c in ("loss:mean", "loss:std", "terms/decay:mean", "summary/t_1pct:mean", "summary/t_1pct:std"):
            assert float(g[c]) == pytest.approx(row[c], rel=1e-12), c


def test_a_killed_train_resumes_its_unstarted_repeats_without_duplicates(tmp_path):
    """SIGKILL (driver and all) once 3 runs are in the file; the same command then runs the rest:
    every planned run finished once, each the run an uninterrupted train makes. A kill inside the
    driver's write of a run leaves no trace of it (a run is linked into the file only once whole,
    RunWriter.record), so the file holds finished runs only; no run is finished twice. (300 Adam
    steps per run give the poller time to see the third run before the tenth on a loaded machine.)"""
    def train(path):
        return ["train", "-N", "30", "-F", "0.2", "-A", "300", "-L", "20", "-k", "10", "-f", str(path), "--no-progress"]

    path = tmp_path / "killed.h5"
    proc = subprocess.Popen([sys.executable, "-m", "tcnet.cli", *train(path)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not (path.exists() and len(store.list_runs(path)) >= 3):
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
            time.sleep(0.02)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    before = store.list_runs(path)
    assert 3 <= len(before) < 10
    assert main(train(path)) == 0
    after = store.list_runs(path)
    study = Study.from_dict(tcnet.open(path).studies["train"])
    planned = [p.run_id for p in study.runs()]
    finished = [r for r in after if store.read_run(path, r).status == Status.FINISHED]
    assert after[:len(before)] == before and sorted(r.split(".")[0] for r in finished) == sorted(planned)
    assert after == finished  # the write the kill cut left nothing behind
    best = stored(path, study.runs())
    assert set(best) == set(planned)
    assert tcnet.open(path).grid()["n"].tolist() == [10]
    fresh = tmp_path / "fresh.h5"
    assert main(train(fresh)) == 0
    for run_id in planned:
        rec, _ = best[run_id]
        np.testing.assert_array_equal(rec.history["loss"], store.read_run(fresh, run_id).history["loss"])
