"""SIMPL settings and inputs that cannot work are refused in one line naming the setting and what is
allowed, before anything large is allocated (issue 27, item 6). Before: `--dt 1e-7` (11.2 GiB),
behaviour in centimetres (1.75 GB resident, then MemoryError), constant behaviour (singular
matrix), `--grid-spacing 1e-5` and `--extent 0 1000 0 1000` (MemoryErrors of 74-88 GiB),
`--bandwidth 1e-9` (LinAlgError and a stray LAPACK line) and `--speed 1e-300`
(ZeroDivisionError), each exit 70."""
import numpy as np
import pytest

from tcnet.cli import main
from tcnet_plugins.simpl import data as simdata
from tcnet_plugins.simpl.space import GRID_POINTS, Space


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    """A 20 s synthetic recording (4 cells) as .npz, and variants of it."""
    home = tmp_path_factory.mktemp("simpl_limits")
    a = simdata.generate(0, n_cells=4, duration=20.0)
    np.savez(home / "sim.npz", counts=a["counts"], behaviour=a["behaviour"], time=a["time"])
    np.savez(home / "cm.npz", counts=a["counts"], behaviour=100 * a["behaviour"], time=a["time"])
    np.savez(home / "still.npz", counts=a["counts"], behaviour=np.full_like(a["behaviour"], 0.5), time=a["time"])
    counts = a["counts"].astype(np.int64)
    counts[5, 1] = 2**40
    np.savez(home / "big_counts.npz", counts=counts, behaviour=a["behaviour"], time=a["time"])
    return home


@pytest.mark.parametrize("file, flags, line", [
    ("sim.npz", ["--dt", "1e-7"], "dt must be within a factor 1.5 of time's median step 0.1 s"),
    ("cm.npz", [], f"more than {GRID_POINTS:.0e} points (simpl.space.GRID_POINTS); is behaviour in metres?"),
    ("still.npz", ["--speed", "0.1"], "behaviour must move along every axis, but column 0 is 0.5 in every bin"),
    ("big_counts.npz", [], "counts must be below 2**31 (spikes per bin), got 1099511627776"),
    ("sim.npz", ["--grid-spacing", "1e-5"], "grid_spacing 1e-05 m) has more than 1e+06 points"),
    ("sim.npz", ["--extent", "0", "1000", "0", "1000"], "(5e+04 x 5e+04 = 2.5e+09 points: extent [0, 1000] x [0, 1000]"),
    ("sim.npz", ["--bandwidth", "1e-9"], "bandwidth must be at least 0.25 x grid_spacing (0.005 m"),
    ("sim.npz", ["--speed", "1e-300"], "speed must be in [1e-06, 1000000.0], got 1e-300"),
])
def test_a_simpl_fit_that_cannot_work_is_one_line(file, flags, line, recording, capfd, monkeypatch):
    monkeypatch.chdir(recording)
    code = main(["simpl", "fit", file, "--iterations", "1", *flags])
    out, err = capfd.readouterr()  # the file descriptors: a LAPACK line would be written there
    assert code == 2 and err.count("\n") == 1 and err.startswith("tcnet simpl: ") and line in err, err
    assert out == ""


def test_the_grid_is_sized_without_allocating_it():
    """A grid of 1e20 points is refused from its shape: nothing of its size is made."""
    latent = np.array([[0.0, 0.0], [1.0, 1.0]])
    space = Space("linear", 2)
    assert space.grid_shape(latent, 1e-10, 0.0) == (1e10 + 1, 1e10 + 1)
    with pytest.raises(Exception, match="more than 1e\\+06 points"):
        space.check_grid(latent, 1e-10, 0.0, 4, 2)
    assert space.check_grid(latent, 0.02, 0.05, 4, 2) == (56, 56)
    assert [len(a) for a in space.axes(latent, 0.02, 0.05)] == [56, 56]
