"""tcnet simulate sized by the network (README's example), from the user's own initial states
(--x0, f.simulate(x0=...)), and output names completed or refused the same way for every command."""
import numpy as np
import pytest
from scipy.linalg import expm

import tcnet
from tcnet.cli import main
from tcnet.reader import load_trajectories


@pytest.fixture(scope="module")
def readme(tmp_path_factory):
    """The README's `tcnet train ... -f out/runs`, small; the output name completed to runs.h5."""
    out = tmp_path_factory.mktemp("readme")
    assert main(["train", "-N", "40", "-F", "0.1", "-b", "0.01", "-k", "1", "-A", "5", "-L", "5",
                 "-f", str(out / "runs"), "--no-progress"]) == 0
    assert (out / "runs.h5").exists() and not (out / "runs").exists()
    return out


def test_simulate_lasts_until_the_slowest_mode_has_decayed(readme, capsys):
    f = tcnet.open(readme / "runs.h5")
    run = f.run_ids[0]
    capsys.readouterr()
    assert main(["simulate", str(readme / "runs.h5"), run, "--out", str(readme / "sim")]) == 0
    printed = capsys.readouterr().out
    net = f.network(run)
    tau = net.config["tau"]
    lam = np.linalg.eigvals(np.asarray(net.arrays["J0"]) + np.asarray(net.state().U) @ np.asarray(net.state().V))
    slow = tau / (1 - np.max(lam.real))  # e-folding time of the slowest mode of (J - I) / tau
    da = load_trajectories(readme / "sim.h5")
    t = da["time"].values
    assert t[-1] == pytest.approx(np.log(1000) * slow, rel=1e-9) and len(t) == 1001
    assert t[-1] < 10 * tau * 100  # decay times, not the 10 s of before
    ratio = np.linalg.norm(da.values[-1], axis=-1) / np.linalg.norm(da.values[0], axis=-1)
    assert np.all(ratio < 1e-2)
    assert f"(the slowest mode (e-folding time {slow:.3g}) decayed to 0.001)" in printed
    assert (readme / "sim.png").exists()


def test_help_states_the_rule(capsys):
    with pytest.raises(SystemExit):
        main(["simulate", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "until the network's slowest mode has decayed to 0.001 (ln(1000) times its slowest e-folding time), at " \
           "most 1000 time constants of the network, on a grid of 1000 steps" in text


def test_simulate_from_own_states_in_python_and_on_the_cli(readme, tmp_path, capsys):
    f = tcnet.open(readme / "runs.h5")
    run = f.run_ids[0]
    net = f.network(run)
    x0 = np.random.default_rng(5).normal(size=(3, net.N))
    t = np.linspace(0, 0.05, 11)
    da = f.simulate(run, t, x0=x0)
    A = (np.asarray(net.state().J) - np.eye(net.N)) / net.config["tau"]
    expected = np.stack([expm(A * s) @ x0.T for s in t]).transpose(0, 2, 1)
    assert da.shape == (11, 3, net.N) and np.allclose(da.values, expected, rtol=1e-8, atol=1e-10)
    assert da.attrs["x0"] == "given"
    np.save(tmp_path / "x0.npy", x0)
    assert main(["simulate", str(readme / "runs.h5"), run, "--x0", str(tmp_path / "x0.npy"), "--t-max", "0.05",
                 "--dt", "0.005", "--out", str(tmp_path / "own.h5")]) == 0
    assert "3 trajectories from the states of" in capsys.readouterr().out
    assert np.allclose(load_trajectories(tmp_path / "own.h5").values, expected, rtol=1e-8, atol=1e-10)


def test_x0_of_the_wrong_shape_is_one_line(readme, tmp_path, capsys):
    np.save(tmp_path / "bad.npy", np.zeros((2, 3)))
    run = tcnet.open(readme / "runs.h5").run_ids[0]
    assert main(["simulate", str(readme / "runs.h5"), run, "--x0", str(tmp_path / "bad.npy")]) == 2
    assert capsys.readouterr().err == ("tcnet simulate: --x0 must hold initial states of shape (n, 40) or (40,) for "
                                       "'linear_decay', got shape (2, 3)\n")


@pytest.mark.parametrize("argv", [["run", "{spec}", "-o", "{dir}/a.txt"], ["study", "{study}", "-o", "{dir}/a.txt"],
                                  ["train", "-f", "{dir}/a.txt"],
                                  ["simulate", "{file}", "run-0001", "--out", "{dir}/a.txt"]])
def test_a_wrong_extension_is_refused_the_same_way_everywhere(argv, readme, tmp_path, capsys):
    spec = tmp_path / "s.toml"
    spec.write_text('[dynamics]\nname = "linear_decay"\nN = 6\n[[loss]]\nname = "decay"\n[optimizer]\nname = "adam"\n')
    study = tmp_path / "st.toml"
    study.write_text('[study]\nname = "st"\n[base.dynamics]\nname = "linear_decay"\nN = 6\n[[base.loss]]\nname = '
                     '"decay"\n[base.optimizer]\nname = "adam"\nsteps = 2\n[grid]\n"dynamics.N" = [6, 8]\n')
    argv = [a.format(spec=spec, study=study, dir=tmp_path, file=readme / "runs.h5") for a in argv]
    assert main(argv) == 2
    flag = {"run": "--out", "study": "--out", "train": "-f/--file", "simulate": "--out"}[argv[0]]
    assert capsys.readouterr().err == (f"tcnet {argv[0]}: {flag} must end in .h5 or .hdf5 (or have no extension, "
                                       f"which adds .h5), got '{tmp_path}/a.txt'\n")
    assert not (tmp_path / "a.txt").exists()
