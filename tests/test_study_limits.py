"""Study sizes and statuses (issue 27, items 7 and 10): a study that plans more than MAX_RUNS runs is
refused from the lengths of its grid, overrides and repeats before its plan is built (before: a
1e8-point grid grew to 2.6 GB and ended in a MemoryError after 30 s, repeats = 1e9 and
`ei-study --seeds 1e9` ran until killed); a dynamics seed outside [0, 2^32) is refused where a
network is made; and a study with a run that ended non-finite exits 1, as `tcnet train` and
`tcnet run` do on such a run (before: the study counted it as done and exited 0)."""
import pytest

import tcnet
from tcnet.cli import main
from tcnet.plugins import registry
from tcnet.study import MAX_RUNS, Study
from tcnet.validate import ConfigError

BASE = ('[base.dynamics]\nname = "linear_decay"\nN = 6\n[[base.loss]]\nname = "decay"\n'
        '[base.optimizer]\nname = "adam"\nsteps = 2\n')


def _never_planned(monkeypatch):
    def runs(self):
        raise AssertionError("the plan was built")
    monkeypatch.setattr(Study, "runs", runs)


@pytest.mark.parametrize("head, grid, plans", [
    ("", '[grid]\n"dynamics.n_frac" = [{a}]\n"optimizer.lr" = [{b}]\n', "1e+08 runs (grid 10000 x 10000 values"),
    ("repeats = 1000000000\n", "", "1e+09 runs (grid no values x 1 override(s) x repeats 1000000000)"),
])
@pytest.mark.parametrize("summary", [False, True])
def test_a_study_beyond_max_runs_is_refused_before_its_plan(head, grid, plans, summary, tmp_path, capsys,
                                                             monkeypatch):
    values = ", ".join(str(0.1 + i * 1e-6) for i in range(10000))
    path = tmp_path / "big.toml"
    path.write_text(f"[study]\nname = \"big\"\n{head}{BASE}{grid.format(a=values, b=values)}")
    _never_planned(monkeypatch)
    monkeypatch.chdir(tmp_path)
    code = main(["study", str(path), "--workers", "1", "--no-progress", *(["--summary"] if summary else [])])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert f"tcnet study: plans {plans}" in err and f"more than the {MAX_RUNS} a study may plan" in err
    assert list(tmp_path.iterdir()) == [path]


def test_ei_study_seeds_are_bounded_by_max_runs(tmp_path, capsys):
    code = main(["ei-study", "--mode", "qss", "--n-init", "1", "--steps", "1", "--seeds", "1000000000",
                 "--out", str(tmp_path / "ei")])
    err = capsys.readouterr().err
    assert code == 2 and err == f"tcnet ei-study: --seeds must be an integer in [0, {MAX_RUNS}], got 1000000000\n"
    assert not (tmp_path / "ei").exists()


def test_a_dynamics_seed_beyond_2_to_the_32_is_refused_where_the_network_is_made():
    cls = registry().get("dynamics", "linear_decay")
    net = cls.create(seed=1, N=6)
    with pytest.raises(ConfigError, match=r"linear_decay: seed must be an integer in \[0, 4294967295\], got 1099511627776"):
        tcnet.run({"dynamics": {"name": "linear_decay"}, "loss": [{"name": "decay"}],
                   "optimizer": {"name": "adam", "steps": 1}}, dynamics=cls(net.arrays, net.config, 2**40),
                  progress=False)


NON_FINITE = ('[study]\nname = "nf"\n[base.dynamics]\nname = "linear_decay"\nN = 20\nn_frac = 0.2\n'
              '[[base.loss]]\nname = "decay"\n[[base.loss]]\nname = "stability"\nweight = 1e308\n'
              '[base.optimizer]\nname = "adam"\nsteps = 2\n')


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the overflow that makes the run non-finite
def test_a_study_with_a_non_finite_run_exits_1_as_train_does(tmp_path, capsys):
    """alpha = 1e308 times a positive L2 overflows: the run is stored non-finite; the study says so
    on stderr and exits 1, when it runs and when it summarizes the file."""
    path = tmp_path / "nf.toml"
    path.write_text(NON_FINITE)
    out = str(tmp_path / "nf.h5")
    assert main(["study", str(path), "-o", out, "--workers", "1", "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "1 done (1 non-finite or diverged)" in err and "non-finite: non-finite loss or gradient" in err
    assert main(["study", str(path), "-o", out, "--summary"]) == 1
    assert main(["study", str(path), "-o", out, "--workers", "1", "--no-progress"]) == 1  # rerun: nothing to do
