"""Studies: dotted keys, points, seeds, the summary table, failing runs, the CLI.

Execution across processes (local pool vs dask, killing the driver) is in test_study_exec.py.
Numbers come from closed forms: with Adam at 0 steps a run's final loss is the quadratic at the
initial point, x0 = default_rng(seed).normal(size=3), computed here from the seed.
"""
from pathlib import Path
import concurrent.futures
import csv
import hashlib
import io
import json
import subprocess
import sys

import numpy as np
import pytest

import tcnet
from tcnet import ConfigError
from tcnet.cli import main
from tcnet.plugins import registry
from tcnet.store import StoreError, compare_table, group_rows, list_runs, load_network, read_run
from tcnet.study import Study, derive_seed, set_key
TESTS = Path(__file__).parent

PLUGIN = str(TESTS / "quadratic_plugin.py")
C, H = np.array([1.0, -2.0, 0.5]), np.array([1.0, 4.0, 0.25])  # quadratic_plugin's defaults


def base(steps=0):
    return {"dynamics": {"name": "point", "n": 3}, "loss": [{"name": "quadratic", "label": "q"}],
            "optimizer": {"name": "staged", "stages": [{"name": "adam", "steps": steps, "lr": 0.1},
                                                       {"name": "lbfgs", "max_iter": 0}]}}


def quadratic_at_seed(seed, c=C, h=H):
    x0 = np.random.default_rng(seed).normal(size=3)
    return 0.5 * np.sum(h * (x0 - c) ** 2)


# --- addressing and planning ------------------------------------------------------------------
def test_dotted_keys_address_dynamics_labelled_terms_and_nested_optimizer_settings():
    spec = base()
    set_key(spec, "dynamics.n", 5)
    set_key(spec, "loss.q.weight", 2.0)
    set_key(spec, "optimizer.stages.1.max_iter", 7)
    assert spec["dynamics"]["n"] == 5
    assert spec["loss"][0]["weight"] == 2.0
    assert spec["optimizer"]["stages"] == [{"name": "adam", "steps": 0, "lr": 0.1}, {"name": "lbfgs", "max_iter": 7}]


@pytest.mark.parametrize("key, words", [
    ("loss.quadratic.weight", "term labels are q"),
    ("dynamics.seed", "dynamics.seed cannot be swept"),
    ("optimizer.stages.2.lr", "no entry '2'"),
    ("model.n", "must start with dynamics."),
    ("loss.q", "loss.<label>.<setting>"),
])
def test_bad_dotted_keys_are_config_errors_naming_the_key(key, words):
    with pytest.raises(ConfigError) as err:
        set_key(base(), key, 1)
    assert words in str(err.value)


def test_points_are_grid_times_overrides_with_repeats_innermost():
    s = Study(base(), plugin_files=[PLUGIN], grid={"dynamics.n": [2, 3], "loss.q.weight": [1.0, 2.0, 3.0]},
              overrides=[{"optimizer.stages.0.lr": 0.1}, {"optimizer.stages.0.lr": 0.2}], repeats=2)
    runs = s.runs()
    assert len(runs) == 2 * 3 * 2 * 2
    assert s.swept == ["dynamics.n", "loss.q.weight", "optimizer.stages.0.lr"]
    assert [r.repeat for r in runs[:4]] == [0, 1, 0, 1]
    assert {json.dumps(r.overrides, sort_keys=True) for r in runs} == {
        json.dumps({"dynamics.n": n, "loss.q.weight": w, "optimizer.stages.0.lr": lr}, sort_keys=True)
        for n in (2, 3) for w in (1.0, 2.0, 3.0) for lr in (0.1, 0.2)}
    assert len({r.run_id for r in runs}) == len(runs)


def test_seed_is_sha256_of_study_seed_and_run_key_independent_of_the_other_points():
    small = Study(base(), grid={"dynamics.n": [3, 4]}, repeats=2, seed=11, plugin_files=[PLUGIN]).runs()
    large = Study(base(), grid={"dynamics.n": [5, 4, 3]}, repeats=3, seed=11, plugin_files=[PLUGIN]).runs()
    for r in small:
        key = json.dumps({"overrides": r.overrides, "repeat": r.repeat}, sort_keys=True, separators=(",", ":"))
        expected = int.from_bytes(hashlib.sha256(f"11:{key}".encode()).digest()[:4], "little")
        assert r.seed == expected == r.spec["dynamics"]["seed"]
        twin = next(q for q in large if q.key == r.key)
        assert (twin.seed, twin.run_id) == (r.seed, r.run_id)
    assert len({r.seed for r in large}) == len(large)
    assert derive_seed(12, small[0].key) != small[0].seed


def test_toml_nested_tables_mean_the_same_as_quoted_dotted_keys(tmp_path):
    head = f'[study]\nname = "t"\nseed = 3\nrepeats = 2\nplugins = ["{PLUGIN}"]\n' + _base_toml()
    (tmp_path / "a.toml").write_text(head + '[grid]\n"dynamics.n" = [2, 3]\n"loss.q.weight" = [1.0, 0.5]\n')
    (tmp_path / "b.toml").write_text(head + "[grid]\ndynamics.n = [2, 3]\nloss.q.weight = [1.0, 0.5]\n")
    a, b = Study.from_toml(tmp_path / "a.toml"), Study.from_toml(tmp_path / "b.toml")
    assert [r.run_id for r in a.runs()] == [r.run_id for r in b.runs()]
    assert len(a.runs()) == 8 and a.plugin_files == (PLUGIN,)


@pytest.mark.parametrize("extra, words", [
    ('[grid]\n"dynamics.n" = 3\n', "must be a non-empty list"),
    ('[study]\nrepeats = 0\n', "repeats must be an integer in [1, inf]"),
    ('[study]\nworkers = 2\n', "unknown setting 'workers'"),
    ('[sweep]\n"dynamics.n" = [3]\n', "unknown setting 'sweep'"),
    ('[grid]\n"loss.quadratic.weight" = [1.0]\n', "term labels are q"),
])
def test_bad_study_files_are_config_errors(tmp_path, extra, words):
    (tmp_path / "s.toml").write_text(_base_toml() + extra)
    with pytest.raises(ConfigError) as err:
        Study.from_toml(tmp_path / "s.toml")
    assert words in str(err.value)


def test_base_spec_must_not_set_the_seed():
    spec = base()
    spec["dynamics"]["seed"] = 1
    with pytest.raises(ConfigError, match="must not set seed"):
        Study(spec)


def _base_toml():
    return ('[base.dynamics]\nname = "point"\nn = 3\n[[base.loss]]\nname = "quadratic"\nlabel = "q"\n'
            '[base.optimizer]\nname = "adam"\nsteps = 0\n')


# --- running, summaries, failures -------------------------------------------------------------
def test_table_groups_repeats_with_mean_std_n_of_the_closed_form_losses(tmp_path):
    s = Study(base(), grid={"loss.q.weight": [1.0, 3.0]}, repeats=3, seed=5, plugin_files=[PLUGIN])
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        report = s.run(tmp_path / "s.h5", pool, progress=False)
    assert len(report.done) == 6 and not report.failed
    table = s.table(tmp_path / "s.h5")
    assert [r["loss.q.weight"] for r in table.rows] == [1.0, 3.0]
    for row in table.rows:
        seeds = [p.seed for p in s.runs() if p.overrides["loss.q.weight"] == row["loss.q.weight"]]
        q = np.array([quadratic_at_seed(seed) for seed in seeds])
        assert row["n"] == row["finished"] == 3 and row["failed"] == 0
        assert row["terms/q:mean"] == pytest.approx(q.mean(), rel=1e-12)
        assert row["terms/q:std"] == pytest.approx(q.std(ddof=1), rel=1e-12)
        assert row["loss:mean"] == pytest.approx(row["loss.q.weight"] * q.mean(), rel=1e-12)
    # pooled as `tcnet compare --group` pools (which sums in the file's order, the table in repeat order)
    groups = group_rows(compare_table([tmp_path / "s.h5"], plugins=registry([PLUGIN])))
    pooled = sorted((g["loss.q.weight"], g["n"], g["loss:mean"], g["loss:std"], g["terms/q:mean"], g["terms/q:std"]) for g in groups)
    assert pooled == [pytest.approx((r["loss.q.weight"], r["n"], r["loss:mean"], r["loss:std"], r["terms/q:mean"],
                                     r["terms/q:std"]), rel=1e-14) for r in table.rows]


def test_a_second_driver_on_one_file_is_refused_before_computing(tmp_path, capsys):
    """Before: the second driver computed every run, then its writes were refused."""
    from tcnet.store import FileBusyError, driver_lock
    s = Study(base(), grid={"loss.q.weight": [1.0, 3.0]}, plugin_files=[PLUGIN])
    path = tmp_path / "s.h5"
    computed = []
    with driver_lock(path), concurrent.futures.ThreadPoolExecutor(1) as pool:  # the first driver holds the file
        with pytest.raises(FileBusyError, match="another process is writing this file"):
            s.run(path, pool, progress=False, on_result=lambda p, o: computed.append(p))
        toml = tmp_path / "s.toml"
        toml.write_text(f'[study]\nplugins = ["{PLUGIN}"]\n' + _base_toml())
        assert main(["study", str(toml), "-o", str(path), "--workers", "1", "--no-progress"]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"tcnet study: {path}: another process is writing this file (pid") and err.count("\n") == 1
    assert computed == [] and not path.exists()
    assert len(s.run(path, progress=False, workers=1).done) == 2  # free again


def test_failing_run_is_recorded_with_its_error_and_the_study_goes_on(tmp_path):
    # c of length 2 cannot broadcast against x in R^3: the loss raises at the first evaluation
    s = Study(base(), grid={"loss.q.c": [[1.0, -2.0, 0.5], [1.0, 2.0]]}, repeats=2, seed=1, plugin_files=[PLUGIN])
    path = tmp_path / "f.h5"
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        report = s.run(path, pool, progress=False)
        assert len(report.done) == 2 and len(report.failed) == 2
        bad = [p for p in s.runs() if len(p.overrides["loss.q.c"]) == 2]
        for p in bad:
            rec = read_run(path, p.run_id)
            assert rec.status == "failed" and rec.message.startswith("LossError: loss 'quadratic' (term 'q', weight 1,")
            assert "it raised at step 0: ValueError: operands could not be broadcast" in rec.message
        rows = s.table(path).rows
        assert [(r["n"], r["failed"]) for r in rows] == [(2, 0), (0, 2)]
        again = s.run(path, pool, progress=False)  # failed runs are done unless retried
        assert again.skipped == 4 and not again.done
        retried = s.run(path, pool, progress=False, retry_failed=True)
        assert retried.skipped == 2 and len(retried.failed) == 2
        assert read_run(path, bad[0].run_id + ".2").status == "failed"


INTERRUPT = """
import json, os, sys
from tcnet.run import RunSpec
from tcnet.plugins import registry
from tcnet.store import RunWriter
from tcnet.run import build_dynamics
spec = RunSpec.from_dict(json.loads(sys.argv[3]))
w = RunWriter(sys.argv[1], sys.argv[2])
w.start(spec, build_dynamics(spec.dynamics, registry([sys.argv[4]])))
os._exit(0)  # dies mid-run: the file holds the run as running, with no writer
"""


def test_interrupted_run_is_redone_as_a_new_attempt(tmp_path):
    s = Study(base(), grid={"loss.q.weight": [1.0, 2.0]}, seed=2, plugin_files=[PLUGIN])
    path, victim = tmp_path / "i.h5", s.runs()[1]
    subprocess.run([sys.executable, "-c", INTERRUPT, str(path), victim.run_id, json.dumps(victim.spec), PLUGIN],
                   check=True)
    assert read_run(path, victim.run_id).status == "interrupted"
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        report = s.run(path, pool, progress=False)
    assert report.skipped == 0 and sorted(report.done) == sorted([s.runs()[0].run_id, victim.run_id + ".2"])
    row = s.table(path).rows[1]
    assert (row["n"], row["failed"]) == (1, 0)
    assert row["terms/q:mean"] == pytest.approx(quadratic_at_seed(victim.seed), rel=1e-12)


FRAGILE = """
import numpy as np
from tcnet import ConfigError, Dynamics, State, hookimpl
from tcnet.settings import Integer, Settings


class Fragile(Dynamics):
    \"\"\"Fails to build at N = -4, as a data file that cannot be read fails: its declaration allows it.\"\"\"

    name = "fragile"
    trainable = ("x",)
    SETTINGS = Settings(Integer("N", 4, "size"))

    @classmethod
    def build(cls, seed, N):
        if N < 0:
            raise ConfigError(f"fragile: cannot build N = {N}")
        return cls({"x": np.random.default_rng(seed).normal(size=N)}, {"N": N}, seed)

    def make_state(self, params):
        return Point(self, params)


class Point(State):
    @property
    def x(self):
        return self.params["x"]


@hookimpl
def tcnet_dynamics():
    return [Fragile]
"""


def test_run_refused_by_a_declaration_stops_the_study_before_any_run(tmp_path, capsys):
    toml, out = tmp_path / "bad.toml", tmp_path / "bad.h5"
    toml.write_text('[study]\nname = "bad"\nseed = 3\n[base.dynamics]\nname = "linear_decay"\nN = 4\n'
                    'n_frac = 0.5\n[[base.loss]]\nname = "decay"\n[base.optimizer]\nname = "adam"\nsteps = 2\n'
                    '[grid]\n"dynamics.N" = [4, -4]\n')
    assert main(["study", str(toml), "-o", str(out), "--no-progress"]) == 2
    assert capsys.readouterr().err == ("tcnet study: run at dynamics.N = -4: linear_decay: N must be an integer in "
                                       "[2, inf], got -4\n")
    assert not out.exists()


def test_run_whose_network_cannot_be_created_is_stored_as_failed_and_not_retried(tmp_path, capsys):
    (tmp_path / "fragile.py").write_text(FRAGILE)
    toml, out = tmp_path / "bad.toml", tmp_path / "bad.h5"
    toml.write_text(f'[study]\nname = "bad"\nseed = 3\nrepeats = 2\nplugins = ["fragile.py", {json.dumps(PLUGIN)}]\n'
                    '[base.dynamics]\nname = "fragile"\n[[base.loss]]\nname = "quadratic"\nc = [0.0, 0.0, 0.0, 0.0]\n'
                    'h = [1.0, 1.0, 1.0, 1.0]\n[base.optimizer]\nname = "adam"\nsteps = 2\n[grid]\n"dynamics.N" = [4, -4]\n')
    assert main(["study", str(toml), "-o", str(out), "--workers", "1", "--no-progress"]) == 1
    err = capsys.readouterr().err
    message = "ConfigError: fragile: cannot build N = -4"
    assert "4 runs: 0 already in the file, 2 done, 2 failed, 0 lost" in err and err.count(message) == 2
    study = Study.from_toml(toml)
    for p in study.runs():
        rec = read_run(out, p.run_id)
        assert rec.spec == p.resolved
        if p.overrides["dynamics.N"] == 4:
            assert rec.status == "finished" and rec.steps == 3
        else:  # the spec and the error; no initial network, and asking for it says why
            assert (rec.status, rec.message, rec.steps, rec.initial_data) == ("failed", message, 0, None)
            with pytest.raises(StoreError, match="failed before its network was created.*cannot build"):
                rec.initial
            with pytest.raises(StoreError, match="failed before its network was created"):
                load_network(out, f"{p.run_id}/initial")
    assert [(r["dynamics.N"], r["n"], r["failed"]) for r in study.table(out).rows] == [(4, 2, 0), (-4, 0, 2)]
    assert main(["compare", str(out), "--csv"]) == 0
    listed = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert sorted((r["dynamics.N"], r["status"]) for r in listed) == [("-4", "failed")] * 2 + [("4", "finished")] * 2
    assert main(["study", str(toml), "-o", str(out), "--no-progress"]) == 0  # nothing left to run
    assert "4 runs: 4 already in the file, 0 done, 0 failed" in capsys.readouterr().err
    assert sorted(list_runs(out)) == sorted(p.run_id for p in study.runs())


# --- command line -------------------------------------------------------------------------------
def test_cli_study_runs_resumes_prints_csv_and_plot_study_draws(tmp_path, capsys):
    toml = tmp_path / "s.toml"
    second = '[[base.loss]]\nname = "quadratic"\nlabel = "r"\nc = [0.0, 0.0, 0.0]\n'
    toml.write_text(f'[study]\nname = "cli"\nseed = 4\nrepeats = 2\nplugins = ["{PLUGIN}"]\n' + _base_toml()
                    + second + '[grid]\n"loss.q.weight" = [1.0, 2.0]\n"dynamics.n" = [3]\n')
    out = tmp_path / "cli.h5"
    assert main(["study", str(toml), "-o", str(out), "--workers", "2", "--no-progress", "--csv", "-"]) == 0
    first = capsys.readouterr()
    rows = list(csv.DictReader(io.StringIO(first.out)))
    assert "4 runs: 0 already in the file, 4 done" in first.err
    study = Study.from_toml(toml)
    assert [float(r["loss.q.weight"]) for r in rows] == [1.0, 2.0]
    for row in rows:
        seeds = [p.seed for p in study.runs() if p.overrides["loss.q.weight"] == float(row["loss.q.weight"])]
        q = [quadratic_at_seed(x) for x in seeds]
        r = [quadratic_at_seed(x, c=np.zeros(3)) for x in seeds]
        assert int(row["n"]) == 2
        assert float(row["terms/q:mean"]) == pytest.approx(np.mean(q), rel=1e-12)
        assert float(row["terms/r:std"]) == pytest.approx(np.std(r, ddof=1), rel=1e-12)
    assert main(["study", str(toml), "-o", str(out), "--no-progress"]) == 0
    assert "4 already in the file, 0 done" in capsys.readouterr().err
    table = tmp_path / "table.csv"
    table.write_text("keep")  # --csv PATH never replaces a file unless forced
    assert main(["study", str(toml), "-o", str(out), "--summary", "--csv", str(table)]) == 2
    assert capsys.readouterr().err == f"tcnet study: {table}: exists already; refusing to replace it (--force, or " \
                                      "force=True, replaces it)\n" and table.read_text() == "keep"
    assert main(["study", str(toml), "-o", str(out), "--summary", "--csv", str(table), "--force"]) == 0
    assert [r["n"] for r in csv.DictReader(table.open())] == ["2", "2"]
    capsys.readouterr()
    assert main(["plot-study", str(toml), "-o", str(out), "--prefix", str(tmp_path / "fig")]) == 0
    figures = capsys.readouterr().out.split()
    assert figures == [str(tmp_path / "fig_vs_weight.png"), str(tmp_path / "fig_tradeoff_q.png")]
    for f in figures:
        assert open(f, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    assert main(["study", str(tmp_path / "missing.toml")]) == 2
    assert "missing.toml" in capsys.readouterr().err


def test_a_study_includes_its_base_spec_from_a_run_spec_file(tmp_path):
    """[study] base names a run spec file: its sections less dynamics.seed are the base, [base]
    keys override it (tables key by key, lists whole); the same study as one written out."""
    (tmp_path / "recipe.toml").write_text(
        f'plugins = ["{PLUGIN}"]\nout = "elsewhere.h5"\n[dynamics]\nname = "point"\nn = 3\nseed = 9\n'
        '[[loss]]\nname = "quadratic"\nlabel = "q"\n[optimizer]\nname = "adam"\nsteps = 0\nlr = 0.5\n')
    (tmp_path / "inc.toml").write_text('[study]\nname = "inc"\nseed = 3\nbase = "recipe.toml"\n'
                                       '[base.optimizer]\nlr = 0.1\n[grid]\n"dynamics.n" = [2, 3]\n')
    inc = Study.from_toml(tmp_path / "inc.toml")
    assert inc.base == {"dynamics": {"name": "point", "n": 3}, "loss": [{"name": "quadratic", "label": "q"}],
                        "optimizer": {"name": "adam", "steps": 0, "lr": 0.1}}
    written = Study({**inc.base}, {"dynamics.n": [2, 3]}, seed=3, name="inc", plugin_files=[PLUGIN])
    assert [p.run_id for p in inc.runs()] == [p.run_id for p in written.runs()]
    again = Study.from_dict(inc.definition())  # what a study's file keeps reads back as the same study
    assert [p.run_id for p in again.runs()] == [p.run_id for p in inc.runs()]
    (tmp_path / "bad.toml").write_text('[study]\nbase = "nowhere.toml"\n')
    with pytest.raises(ConfigError, match=r"^study: \[study\] base: no file 'nowhere.toml' \(paths are relative"):
        Study.from_toml(tmp_path / "bad.toml")


def test_per_repeat_seeds_are_the_same_at_every_point():
    s = Study(base(), grid={"loss.q.weight": [1.0, 2.0]}, repeats=3, seed=40, plugin_files=[PLUGIN],
              seeds="per-repeat")
    assert [p.seed for p in s.runs()] == [40, 41, 42, 40, 41, 42]
    with pytest.raises(ConfigError, match="seeds must be one of 'per-run', 'per-repeat', got 'each'"):
        Study(base(), seeds="each", plugin_files=[PLUGIN])
    with pytest.raises(ConfigError, match=r"seed \+ repeats - 1 \(the last repeat's seed\) must be"):
        Study(base(), repeats=2, seed=2**32 - 1, plugin_files=[PLUGIN], seeds="per-repeat")


def test_a_study_of_a_dynamics_with_data_stores_it_once_in_its_dtype(tmp_path):
    """SIMPL's spike counts are data (int32), apart from its latent: a study's worker returns them
    once and the driver stores the run with them, as tcnet.run with a RunWriter would."""
    toml, out = tmp_path / "simpl.toml", tmp_path / "simpl.h5"
    toml.write_text('[study]\nname = "simpl"\nseed = 2\n[base.dynamics]\nname = "simpl_latent"\n'
                    '[base.dynamics.generator]\nn_cells = 12\nduration = 120.0\n[[base.loss]]\nname = "simpl_nll"\n'
                    '[base.optimizer]\nname = "simpl"\nsteps = 2\n[grid]\n"optimizer.align_degree" = [0, 1]\n')
    study = Study.from_toml(toml)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        report = study.run(out, pool, progress=False)
    assert len(report.done) == 2 and not report.failed
    for p in study.runs():
        rec = read_run(out, p.run_id)
        direct = tcnet.run(p.resolved, progress=False)
        assert rec.final.data["counts"].dtype == np.int32
        assert np.array_equal(rec.final.data["counts"], direct.final.data["counts"])
        assert np.array_equal(rec.final.arrays["latent"], direct.final.arrays["latent"])
