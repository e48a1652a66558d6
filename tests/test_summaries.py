"""Summaries are computed once, when a run is written, and stored with it: tabulating a file
written by this version runs no eigendecomposition (counted at LAPACK and numpy)."""
import json

import h5py
import numpy as np
import pytest
import scipy.linalg

import tcnet
from tcnet.cli import main
from tcnet.store import RunWriter, compare_table


@pytest.fixture(scope="module")
def runs_file(tmp_path_factory):
    out = tmp_path_factory.mktemp("summaries") / "runs.h5"
    for seed in (0, 1, 2):
        tcnet.run({"dynamics": {"name": "linear_decay", "seed": seed, "N": 20, "n_frac": 0.1},
                   "loss": [{"name": "decay"}, {"name": "stability", "weight": 1e5}],
                   "optimizer": {"name": "adam", "steps": 3, "lr": 0.01}},
                  recorders=[RunWriter(out)], progress=False)
    return out


@pytest.fixture
def eigs(monkeypatch):
    """Counts the eigendecompositions and Schur forms (the Lyapunov path) computed meanwhile."""
    count = [0]

    def counting(f):
        def wrapped(*args, **kwargs):
            count[0] += 1
            return f(*args, **kwargs)
        return wrapped

    for module, name in ((scipy.linalg.lapack, "dgeev"), (scipy.linalg.lapack, "zgeev"), (np.linalg, "eig"),
                         (np.linalg, "eigvals"), (scipy.linalg, "eig"), (scipy.linalg, "schur")):
        monkeypatch.setattr(module, name, counting(getattr(module, name)))
    return count


def test_the_counter_sees_a_summary(runs_file, eigs):
    """The count can fail: summarizing one final network does eigendecompose."""
    tcnet.open(runs_file).network("run-0001").summary()
    assert eigs[0] > 0


def test_tabulating_runs_no_eig(runs_file, eigs, capsys):
    f = tcnet.open(runs_file)
    runs, groups = f.runs, f.groups
    assert main(["compare", str(runs_file)]) == 0 and main(["compare", "--group", "--csv", str(runs_file)]) == 0
    rows = compare_table([runs_file])
    assert eigs[0] == 0
    assert len(runs) == 3 and len(groups) == 1 and "summary/spectral_abscissa" in runs.columns


def test_the_stored_summary_is_the_final_network_s(runs_file):
    rows = {r["run"]: r for r in compare_table([runs_file])}
    for run in ("run-0001", "run-0002", "run-0003"):
        with h5py.File(runs_file) as h:
            stored = json.loads(h[f"runs/{run}"].attrs["summary"])
        fresh = tcnet.open(runs_file).network(run).summary()  # recomputed from the saved final arrays
        assert stored == pytest.approx(fresh, rel=1e-12)
        assert {k[8:]: v for k, v in rows[run].items() if k.startswith("summary/")} == stored


def test_a_study_table_runs_no_eig(tmp_path, eigs, capsys):
    out = tmp_path / "train.h5"
    assert main(["train", "-N", "20", "-F", "0.1", "-b", "0.01 0.1", "-k", "2", "-A", "2", "-L", "2", "-f", str(out),
                 "--no-progress"]) == 0
    assert eigs[0] > 0  # training and storing summaries does
    eigs[0] = 0
    grid = tcnet.open(out).grid()
    assert eigs[0] == 0 and len(grid) == 2 and (grid["n"] == 2).all()
    assert np.isfinite(grid["summary/spectral_abscissa:mean"]).all()
