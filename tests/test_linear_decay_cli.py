"""`tcnet train` and `tcnet demo` (from the linear_decay plugin) with the store's compare/simulate."""
import warnings

import numpy as np
import pytest

import tcnet
from tcnet import store
from tcnet.cli import main


def test_train_writes_one_run_per_combination(tmp_path, capsys):
    out = tmp_path / "out.h5"
    code = main(["train", "-N", "100", "-F", "0.1 0.2", "-b", "0.01", "-k", "2", "-f", str(out),
                 "-A", "2", "-L", "3", "-r", "7", "--no-progress"])
    assert code == 0
    runs = store.list_runs(out)
    assert len(runs) == 4
    seen = set()
    for run_id in runs:
        rec = store.read_run(out, run_id)
        dyn = rec.spec["dynamics"]
        seen.add((dyn["n_frac"], dyn["seed"]))
        assert dyn["N"] == 100 and dyn["init"] == "legacy" and dyn["normalization"] == "raw_weights"
        assert [t["name"] for t in rec.spec["loss"]] == ["decay", "stability", "smoothness"]
        assert [t.get("weight", 1.0) for t in rec.spec["loss"]] == [1.0, 1e5, 0.01]
        stages = rec.spec["optimizer"]["stages"]
        assert (stages[0]["steps"], stages[0]["lr"], stages[1]["max_iter"]) == (2, 0.01, 3)
        # the legacy draw of J0 for the run's seed (repeat k uses seed r + k)
        J0 = np.random.RandomState(dyn["seed"]).randn(100, 100) / np.sqrt(100)
        np.testing.assert_array_equal(rec.initial.arrays["J0"], J0)
        assert rec.history["loss"][-1] <= rec.history["loss"][0]
        assert dyn["backend"] == rec.initial.config["backend"] == "auto"  # the default, saved in both
        assert rec.final.summary()["lyapunov_path"] == 0.0  # auto took the fused path here
        history = tcnet.open(out).history(run_id)  # and says so at every step
        assert len(history) == 6 and (history["extra/lyapunov_path"] == 0.0).all()
    assert seen == {(0.1, 7), (0.1, 8), (0.2, 7), (0.2, 8)}
    capsys.readouterr()

    assert main(["compare", str(out)]) == 0
    table = capsys.readouterr().out
    assert all(run_id in table for run_id in runs)
    assert main(["simulate", str(out), runs[0], "--t-max", "0.05", "--dt", "0.01", "--n-init", "2"]) == 0
    assert "t_1pct" in capsys.readouterr().out


def test_train_warns_once_for_a_run_with_divergent_decay_steps(tmp_path, capsys):
    """Seeds 3 and 4 (N = 30, n/N = 0.2): seed 3 starts unstable (its first steps' L1 stands for a
    divergent integral), seed 4 stays stable throughout. One warning line on stderr, for run-0001,
    with the count of its stored history's marked steps; the run's losses are stored unchanged
    (the same as a run of the same spec without the command line)."""
    out = tmp_path / "out.h5"
    assert main(["train", "-N", "30", "-F", "0.2", "-k", "2", "-r", "3", "-A", "4", "-L", "6", "-f", str(out),
                 "--no-progress"]) == 0
    err = capsys.readouterr().err
    f = tcnet.open(out)
    marked = [int(f.history(r)["extra/decay_diverges"].sum()) for r in store.list_runs(out)]
    assert marked[0] > 0 and marked[1] == 0
    first = store.list_runs(out)[0]
    steps = len(f.history(first))
    assert err.splitlines() == [
        f"tcnet train: warning: run {first}: at {marked[0]} of {steps} steps J had an eigenvalue with real part "
        ">= 1, where the decay term L1 is the finite closed form of a divergent integral, not a decay value "
        "(marked in the history column extra/decay_diverges)"]
    rec = store.read_run(out, first)
    same = tcnet.run(rec.spec, progress=False)
    np.testing.assert_array_equal(rec.history["loss"], [s.loss for s in same.history.steps])


def test_train_backend_flag_sets_the_backend(tmp_path, capsys):
    """--backend lyapunov: saved in the spec and the network, and the run's final network says so."""
    out = tmp_path / "lyap.h5"
    assert main(["train", "-N", "30", "-A", "2", "-L", "2", "--backend", "lyapunov", "-f", str(out),
                 "--no-progress"]) == 0
    rec = store.read_run(out, store.list_runs(out)[0])
    assert rec.spec["dynamics"]["backend"] == "lyapunov" == rec.final.config["backend"]
    assert rec.final.summary()["lyapunov_path"] == 1.0
    assert (tcnet.open(out).history(rec.run_id)["extra/lyapunov_path"] == 1.0).all()
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_:
        main(["train", "--backend", "torch", "-f", str(tmp_path / "bad.h5"), "--no-progress"])
    assert exit_.value.code == 2 and "--backend: invalid choice: 'torch'" in capsys.readouterr().err
    assert not (tmp_path / "bad.h5").exists()


def test_train_rejects_bad_input_before_writing(tmp_path, capsys):
    out = tmp_path / "bad.h5"
    assert main(["train", "-N", "100", "-F", "0.1 1.5", "-f", str(out), "--no-progress"]) == 2
    assert "train: -F/--n-fracs must be in (0, 1], got 1.5" in capsys.readouterr().err
    assert main(["train", "-N", "1", "-f", str(out), "--no-progress"]) == 2
    assert "train: -N/--N must be an integer in [2, inf], got 1" in capsys.readouterr().err
    assert main(["train", "-T", "0", "-f", str(out), "--no-progress"]) == 2
    assert "tau must be in (0, inf]" in capsys.readouterr().err
    assert not out.exists()


def test_demo_trains_saves_and_draws(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path), "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "initial loss" in text and "final loss" in text and "decay time after: t_1% =" in text
    runs = store.list_runs(tmp_path / "demo.h5")
    assert len(runs) == 1
    rec = store.read_run(tmp_path / "demo.h5", runs[0])
    assert rec.history["loss"][-1] < rec.history["loss"][0]
    assert rec.final.summary()["spectral_abscissa"] < 1  # trained to be stable
    for name in ("learning_curve", "activity_decay", "spectra", "readout"):
        png = tmp_path / f"demo_{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_reproduction_reaches_published_losses(tmp_path):
    """The notebook reproduction (N = 500; several minutes): final losses at or below the targets."""
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).parents[1] / "examples" / "reproduce_preparatory_notebook.py"
    subprocess.run([sys.executable, str(script), "--out", str(tmp_path), "--no-progress"], check=True)
    h5 = tmp_path / "reproduce_preparatory.h5"
    finals = {}
    for run_id in store.list_runs(h5):
        rec = store.read_run(h5, run_id)
        beta = [t.get("weight", 1.0) for t in rec.spec["loss"] if t["name"] == "smoothness"][0]
        finals[beta] = rec.history["loss"][-1]
    assert finals[0.0] <= 0.6340 and finals[0.01] <= 0.6408 and finals[0.1] <= 0.6520


def test_train_reports_a_non_finite_run(tmp_path, capsys):
    """alpha = 1e308 times a positive L2 overflows: the guard stops the run, train says so."""
    out = tmp_path / "nf.h5"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # inf in the backward pass
        code = main(["train", "-N", "100", "-F", "0.2", "-a", "1e308", "-A", "2", "-L", "2", "-f", str(out),
                     "--no-progress"])
    assert code == 1
    captured = capsys.readouterr()
    assert "non-finite" in captured.out
    run_id, = store.list_runs(out)
    assert f"tcnet train: run {run_id} non-finite: non-finite loss or gradient" in captured.err
    assert store.read_run(out, run_id).status == "non-finite"


@pytest.mark.parametrize("kind, message", [
    ("nan", "array 'J0' has 1 non-finite entries"),
    ("shape", "linear_decay: J0 must have shape (20, 20), got (20, 19)"),
])
def test_corrupt_saved_network_is_rejected_on_load(tmp_path, capsys, kind, message):
    import h5py

    from tcnet.plugins import registry

    path = tmp_path / "net.h5"
    store.save_network(path, "net", registry().get("dynamics", "linear_decay").create(seed=0, N=20))
    with h5py.File(path, "r+") as f:
        J0 = f["networks/net/J0"][()]
        if kind == "nan":
            J0[3, 4] = np.nan
        else:
            J0 = J0[:, :-1]
        del f["networks/net/J0"]
        f["networks/net/J0"] = J0
    with pytest.raises(store.StoreError) as err:
        store.load_network(path, "net")
    assert message in str(err.value)
    assert main(["simulate", str(path), "net"]) != 0
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("flag", ["-N", "-F", "-b"])
def test_an_empty_list_flag_is_refused_in_one_line(flag, tmp_path, capsys):
    """`--N ''` (found by the CLI property test) was an internal error: max() of no sizes."""
    out = tmp_path / "t.h5"
    with pytest.raises(SystemExit) as stop:
        main(["train", flag, " , ", "-f", str(out)])
    assert stop.value.code == 2 and not out.exists()
    assert "list value: ' , '" in capsys.readouterr().err
