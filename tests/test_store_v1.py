"""A store written by tcnet before issue 13 (tests/data/store_v1.h5, see make_store_v1.py) reads,
compares, simulates and resumes with today's code, and today's code reproduces its numbers."""
import shutil
from pathlib import Path

import numpy as np
import pytest

import tcnet
from tcnet import store
from tcnet.cli import main
from tcnet.resume import resume

DATA = Path(__file__).parent / "data"
EVALUATED_AGAIN = {"run-0001": 2, "run-0003": 0}
"""Evaluations the stored runs counted that today's code does not make: the version that wrote
them evaluated an L-BFGS stage's start twice (once to report it, once for scipy's first call), and
evaluated it once more there although the Adam stage had just evaluated it as its last iterate."""


@pytest.fixture
def v1(tmp_path):
    """A copy of the fixture (resuming and simulating write to the file they are given)."""
    path = tmp_path / "store_v1.h5"
    shutil.copy(DATA / "store_v1.h5", path)
    return path


def test_reads_runs_networks_and_checkpoints():
    path = DATA / "store_v1.h5"
    assert store.list_runs(path) == ["run-0001", "run-0002", "run-0003"]
    done, cut, toy = (store.read_run(path, r) for r in store.list_runs(path))
    assert (done.status, cut.status, toy.status) == ("finished", "interrupted", "finished")
    assert (done.steps, cut.steps, toy.steps) == (24, 6, 61)
    assert done.spec["optimizer"]["name"] == "chain"  # the former name, still accepted
    ck = cut.checkpoint
    assert (ck.step, ck.stage) == (5, 0) and ck.evaluations == 6  # one evaluation per Adam step
    assert ck.opt_state["t"] == 5 and set(ck.opt_state) == {"t", "m", "v"}
    saved = store.load_network(path, "prep")
    for k, v in done.final.arrays.items():
        assert np.array_equal(saved.arrays[k], v)


def test_compare_lists_every_run(capsys):
    assert main(["compare", str(DATA / "store_v1.h5")]) == 0
    out = capsys.readouterr().out
    assert all(r in out for r in ("run-0001", "run-0002", "run-0003"))
    rows = {r["run"]: r for r in store.compare_table([DATA / "store_v1.h5"])}
    stored = store.read_run(DATA / "store_v1.h5", "run-0001").history["loss"][-1]
    assert rows["run-0001"]["loss"] == stored
    # today's column names for an older file's numbers (tcnet.store.tables)
    assert "steps" in rows["run-0001"] and any(c.startswith("terms/") for c in rows["run-0001"])
    assert not any(c.startswith(("term.", "final.")) or c == "iterations" for c in rows["run-0001"])


def test_today_reproduces_the_stored_runs():
    """The same specs run now give the stored histories: the two-stage linear_decay run and the
    lagrangian run with its multiplier column."""
    for run_id, extra in (("run-0001", ()), ("run-0003", ("multiplier", "violation", "objective"))):
        rec = store.read_run(DATA / "store_v1.h5", run_id)
        # on the stored network: its config names the path it was computed with (linear_decay's
        # backend "eig"); the spec alone would now take today's default, "auto" (equal to ~1e-11)
        now = tcnet.run(rec.spec, dynamics=rec.initial, progress=False)
        assert len(now.history.steps) == rec.steps
        np.testing.assert_allclose(now.history.column("loss"), rec.history["loss"], rtol=1e-12, atol=1e-15)
        for key in extra:
            np.testing.assert_allclose([s.extra[key] for s in now.history.steps], rec.history[f"extra/{key}"],
                                       rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(now.result.x, rec.final.vector(), rtol=1e-12, atol=1e-15)
        assert now.result.evaluations == rec.attrs["evaluations"] - EVALUATED_AGAIN[run_id]


def test_resume_the_interrupted_run_ends_where_the_uninterrupted_one_did(v1):
    resume(v1, "run-0002")
    done, resumed = store.read_run(v1, "run-0001"), store.read_run(v1, "run-0002")
    assert resumed.status == "finished" and list(resumed.attrs["resumed_at"]) == [5]
    # 1e-11: the eig path's gradient now runs in real arithmetic (issue 15), so the resumed steps
    # differ from the stored ones in rounding, which L-BFGS carries to ~1e-12 by the last step
    for key in ("step", "stage", "loss", "grad_norm", "terms/decay"):
        np.testing.assert_allclose(resumed.history[key], done.history[key], rtol=1e-11, atol=0)
    # the count goes on from the checkpoint's, plus one: the resumed session evaluates its start again
    assert resumed.attrs["evaluations"] == done.attrs["evaluations"] + 1 - EVALUATED_AGAIN["run-0001"]
    np.testing.assert_allclose(resumed.final.vector(), done.final.vector(), rtol=1e-11, atol=1e-15)
    # the columns today's state adds (decay_diverges, lyapunov_path) are NaN in the rows stored
    # before them and recorded from the resumed step on (this network is stable: L1 is a decay value)
    marker = resumed.history["extra/decay_diverges"]
    assert np.isnan(marker[:6]).all() and (marker[6:] == 0.0).all()


def test_simulate_a_saved_network_gives_the_stored_trajectories(v1, tmp_path):
    out = tmp_path / "traj.h5"
    assert main(["simulate", str(v1), "prep", "--t-max", "0.05", "--dt", "0.01", "--n-init", "3", "--seed", "1",
                 "--out", str(out)]) == 0
    t, x, _ = store.read_trajectories(out)
    t1, x1, _ = store.read_trajectories(DATA / "traj_v1.h5")
    np.testing.assert_allclose(t, t1, rtol=0, atol=1e-15)
    np.testing.assert_allclose(x, x1, rtol=1e-12, atol=1e-15)
