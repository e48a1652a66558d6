"""Every setting declared once and checked (tcnet.spec, tcnet.settings): a misspelled, mistyped or
out-of-range key is refused in one line before anything is built or computed, through tcnet.run,
a study and the command line; the same specs spelled right run; a run stores its spec with every
default filled in; every registered plugin declares its settings, and docs/SETTINGS.md is theirs."""
import json
import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest

import tcnet
from tcnet import ConfigError, Loss, hookimpl, store
from tcnet.cli import main
from tcnet.plugins import Registry, registry, settings_page
from tcnet.resume import resume
from tcnet.settings import Real, Settings, UncheckedSettingsWarning
from tcnet.store import RunWriter, StoreError
from tcnet_plugins.preparatory.dynamics import LinearDecay

ROOT = Path(__file__).parents[1]


def spec(**changes):
    """A small preparatory run, with `changes` ('dynamics' / 'optimizer' keys, or 'loss' terms by index)."""
    s = {"dynamics": {"name": "linear_decay", "seed": 1, "N": 12},
         "loss": [{"name": "decay"}, {"name": "stability", "weight": 1e5}, {"name": "smoothness", "weight": 0.01}],
         "optimizer": {"name": "staged", "stages": [{"name": "adam", "steps": 2, "lr": 0.01},
                                                   {"name": "lbfgs", "max_iter": 2}]}}
    for section, entry in changes.items():
        if section == "loss":
            for i, term in entry.items():
                s["loss"][i] = term
        else:
            s[section].update(entry)
    return s


BATTERY = [  # (changes, the one line it is refused with)
    ({"loss": {1: {"name": "stability", "wieght": 1e5}}},
     "stability: unknown setting 'wieght' (did you mean 'weight'?); accepted: label, weight"),
    ({"loss": {1: {"name": "stability", "weight": -1e5}}}, "stability: weight must be in [0, inf], got -100000.0"),
    ({"loss": {1: {"name": "stability", "weight": "1e5"}}},
     "stability: weight must be a finite real number, got '1e5'"),
    ({"loss": {0: {"name": "decay", "scale": 2}}}, "decay: unknown setting 'scale'; accepted: label, weight"),
    ({"loss": {0: {"name": "deacy"}}}, "unknown loss 'deacy' (did you mean 'decay'?); registered: "),
    ({"dynamics": {"n_fac": 0.2}}, "linear_decay: unknown setting 'n_fac' (did you mean 'n_frac'?); accepted: N, "),
    ({"dynamics": {"N": 12.5}}, "linear_decay: N must be an integer, got 12.5"),
    ({"dynamics": {"tau": -0.01}}, "linear_decay: tau must be in (0, inf], got -0.01"),
    ({"dynamics": {"N": 12, "n_frac": 0.01}}, "linear_decay: n_frac must give rank n = round(N n_frac) >= 1, got n = 0"),
    ({"dynamics": {"backend": "fast"}}, "linear_decay: backend must be one of 'eig', 'auto', 'fused', 'lyapunov'"),
    ({"dynamics": {"seed": -2}}, "linear_decay: seed must be an integer in [0, 4294967295], got -2"),
    ({"optimizer": {"stages": [{"name": "adam", "stpes": 2}]}},
     "adam: unknown setting 'stpes' (did you mean 'steps'?); accepted: beta1, beta2, eps, gtol, lr, steps"),
    ({"optimizer": {"stages": [{"name": "adam", "lr": 0}]}}, "adam: lr must be in (0, inf], got 0"),
]


class NothingBuilt:
    """Fails the test if a network is built (the refusal must come first)."""

    def __enter__(self):
        self.build = LinearDecay.__dict__["build"]
        LinearDecay.build = classmethod(lambda cls, *a, **k: pytest.fail("a network was built"))

    def __exit__(self, *exc):
        LinearDecay.build = self.build


@pytest.mark.parametrize("changes, message", BATTERY)
def test_tcnet_run_refuses_each_bad_key_in_one_line_before_anything_is_built(changes, message, tmp_path):
    path = tmp_path / "runs.h5"
    with NothingBuilt(), pytest.raises((ConfigError, KeyError)) as err:
        tcnet.run(spec(**changes), recorders=[RunWriter(path)], progress=False)
    text = str(err.value)
    assert text.startswith(message) and "\n" not in text
    assert not path.exists()


def test_the_same_spec_spelled_right_runs_and_stores_every_default(tmp_path):
    path = tmp_path / "runs.h5"
    res = tcnet.run(spec(), recorders=[RunWriter(path)], progress=False)
    assert res.result.status in ("max_steps", "converged")
    expected = {  # written out from the declarations' defaults, not read from them
        "dynamics": {"name": "linear_decay", "seed": 1, "N": 12, "n_frac": 0.1, "tau": 0.01,
                     "normalization": "raw_weights", "init": "legacy", "backend": "auto"},
        "loss": [{"name": "decay", "weight": 1.0, "label": "decay"},
                 {"name": "stability", "weight": 1e5, "label": "stability"},
                 {"name": "smoothness", "weight": 0.01, "label": "smoothness"}],
        "optimizer": {"name": "staged", "stages": [
            {"name": "adam", "steps": 2, "lr": 0.01, "gtol": 0.0, "beta1": 0.9, "beta2": 0.999, "eps": 1e-7},
            {"name": "lbfgs", "max_iter": 2, "gtol": 1e-5, "ftol": 2.220446049250313e-09, "memory": 10}]},
    }
    assert res.spec.as_dict() == expected
    assert store.read_run(path, "run-0001").spec == expected


def test_a_run_reads_and_resumes_with_the_values_it_ran_with(tmp_path, monkeypatch):
    """A default changed after a run was stored (a newer tcnet) does not change the stored run:
    its spec holds the value, and resuming it runs with that value."""
    from test_store import Raiser

    path = tmp_path / "runs.h5"
    s = {**spec(), "optimizer": {"name": "adam", "steps": 6}}
    with pytest.raises(KeyboardInterrupt):
        tcnet.run(s, recorders=[RunWriter(path, flush_steps=1), Raiser(3, KeyboardInterrupt())], progress=False)
    from tcnet.optim import Adam

    monkeypatch.setattr(Adam, "SETTINGS", Adam.SETTINGS.with_defaults(lr=0.5))  # "a newer default"
    resume(path, "run-0001")
    resumed = store.read_run(path, "run-0001")
    assert resumed.spec["optimizer"]["lr"] == 0.01
    monkeypatch.undo()
    whole = tcnet.run(s, progress=False)
    assert np.array_equal(resumed.history["loss"], whole.history.column("loss"))


REWARD = """
from tcnet import Loss, hookimpl


class Reward(Loss):
    \"\"\"L1 as a term whose weight may be negative (a reward to maximize).\"\"\"

    name = "reward"
    signed = True

    def __call__(self, state):
        return state.decay


@hookimpl
def tcnet_losses():
    return [Reward]
"""


def test_a_loss_declared_signed_takes_a_negative_weight(tmp_path):
    (tmp_path / "reward.py").write_text(REWARD)
    plugins = Registry([tmp_path / "reward.py"])
    s = {**spec(), "loss": [{"name": "decay"}, {"name": "reward", "weight": -0.5}]}
    res = tcnet.run(s, plugins=plugins, progress=False)
    assert res.spec.loss[1] == {"name": "reward", "weight": -0.5, "label": "reward"}
    first = res.history.steps[0]
    assert first.loss == pytest.approx(0.5 * first.terms["decay"], rel=1e-14)  # decay - 0.5 decay
    assert plugins.get("loss", "reward").term_settings().help_lines()[0] == (
        "weight: the term's weight in the objective (any sign) (a real number in [-inf, inf]; default 1.0)")


def test_a_plugin_that_declares_nothing_works_with_one_warning():
    class Scaled(Loss):
        name = "scaled"

        def __init__(self, scale=1.0):
            super().__init__(scale=scale)
            self.scale = scale

        def __call__(self, state):
            return self.scale * state.decay

    dyn = LinearDecay.create(seed=1, N=12)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        a, b = Scaled(scale=2.0), Scaled(scale=3.0)
    assert [str(w.message) for w in caught if w.category is UncheckedSettingsWarning] == [
        "loss 'scaled' declares no SETTINGS: its keys 'scale' are not checked (a misspelled key is ignored or "
        "fails late)"]
    assert b(dyn.state()) == pytest.approx(3.0 * float(dyn.state().decay), rel=1e-15)
    assert a.config == {"scale": 2.0}


def test_every_registered_plugin_declares_and_documents_each_setting():
    entries = registry().all()
    assert {e.kind for e in entries} == {"dynamics", "loss", "optimizer"}
    for e in entries:
        declared = e.settings
        assert declared is not None, f"{e.kind} {e.name} declares no settings"
        assert all(s.doc for s in declared), e.name
        assert len(set(declared.names)) == len(declared.names), e.name
        if e.kind == "loss":
            assert declared.names[:2] == ("weight", "label")
        for s in declared:  # each default is allowed by its own declaration
            if s.default is not None and not isinstance(s.default, type(tcnet.settings.REQUIRED)):
                s.validate(e.name, s.default)


def test_settings_page_is_generated_from_the_declarations_and_current(capsys):
    assert main(["plugins", "--markdown"]) == 0
    page = capsys.readouterr().out
    assert (ROOT / "docs" / "SETTINGS.md").read_text() == page, \
        "docs/SETTINGS.md is stale: regenerate it with `tcnet plugins --markdown > docs/SETTINGS.md`"
    for e in registry().all():  # every setting of every plugin is on it
        assert f"## {e.kind} `{e.name}`" in page
        for s in e.settings:
            assert f"| `{s.name}` |" in page
    one = settings_page([e for e in registry().all() if e.name == "adam"])
    assert "| `lr` |  | a real number in (0, inf] | `0.01` | learning rate (step size) |" in one


def test_cli_plugins_name_shows_a_loss_term_s_settings(capsys):
    assert main(["plugins", "equality"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-3:] == [
        "  quantity: the name of a quantity of the dynamics' state (a non-empty string; required)",
        "  target: the value: a number, or a list as long as the selection (a number or a list of numbers; "
        "default 0.0)",
        "  index: entries of the flattened quantity: an integer or a non-empty list (null: all) (an integer or a "
        "list of integers or null; default null)"]
    assert out[-5].startswith("  weight: the term's weight in the objective (a real number in [0, inf]")


STUDY = ('[study]\nname = "s"\nseed = 1\n[base.dynamics]\nname = "linear_decay"\nN = 8\n[[base.loss]]\n'
         'name = "decay"\n[[base.loss]]\nname = "stability"\nweight = 1e5\n[base.optimizer]\nname = "adam"\n'
         'steps = 2\n')


@pytest.mark.parametrize("extra, message", [
    ('[grid]\n"dynamics.n_fac" = [0.2, 0.5]\n',
     "tcnet study: run at dynamics.n_fac = 0.2: linear_decay: unknown setting 'n_fac' (did you mean 'n_frac'?)"),
    ('[grid]\n"optimizer.stpes" = [1, 2]\n', "tcnet study: run at optimizer.stpes = 1: adam: unknown setting "
                                             "'stpes' (did you mean 'steps'?)"),
    ('[grid]\n"dynamics.N" = [8, 9.5]\n', "tcnet study: run at dynamics.N = 9.5: linear_decay: N must be an integer"),
    ('[grid]\n"loss.stability.weight" = [1e5, -1]\n', "tcnet study: run at loss.stability.weight = -1: stability: "
                                                      "weight must be in [0, inf], got -1"),
    ('[[overrides]]\n"loss.stability.wieght" = 1\n', "tcnet study: run at loss.stability.wieght = 1: stability: "
                                                     "unknown setting 'wieght' (did you mean 'weight'?)"),
])
def test_a_study_with_a_bad_key_anywhere_is_refused_before_any_run(extra, message, tmp_path, capsys):
    toml, out = tmp_path / "s.toml", tmp_path / "s.h5"
    toml.write_text(STUDY + extra)
    with NothingBuilt():
        assert main(["study", str(toml), "-o", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(message) and err.count("\n") == 1
    assert not out.exists()


def test_the_issue_s_misspelled_weight_in_a_study_base(tmp_path, capsys):
    toml, out = tmp_path / "s.toml", tmp_path / "s.h5"
    toml.write_text(STUDY.replace("weight = 1e5", "wieght = 1e5"))
    assert main(["study", str(toml), "-o", str(out), "--no-progress"]) == 2
    assert capsys.readouterr().err == ("tcnet study: run at the base spec: stability: unknown setting 'wieght' (did "
                                       "you mean 'weight'?); accepted: label, weight\n")
    toml.write_text(STUDY)  # spelled right, it runs
    assert main(["study", str(toml), "-o", str(out), "--no-progress"]) == 0
    (run_id,) = store.list_runs(out)
    assert store.read_run(out, run_id).history["terms/stability"].size == 3


@pytest.mark.parametrize("argv, message", [
    (["--tau", "-1"], "tcnet train: linear_decay: tau must be in (0, inf], got -1.0"),
    (["-F", "0.001"], "tcnet train: linear_decay: n_frac must give rank n = round(N n_frac) >= 1, got n = 0"),
])
def test_train_flags_are_checked_by_the_same_declarations(argv, message, tmp_path, capsys):
    out = tmp_path / "t.h5"
    with NothingBuilt():
        code = main(["train", "-N", "20", "-f", str(out), "-A", "1", "-L", "1", "--no-progress", *argv])
    assert code == 2 and capsys.readouterr().err == message + "\n" and not out.exists()


def test_load_network_of_a_config_that_no_longer_validates_names_plugin_and_key(tmp_path):
    path = tmp_path / "n.h5"
    store.save_network(path, "net", LinearDecay.create(seed=1, N=6, n_frac=0.5))
    with h5py.File(path, "r+") as f:
        config = json.loads(f["networks/net"].attrs["config"])
        config["normalisation"] = config.pop("normalization")  # written by hand, or by another version
        f["networks/net"].attrs["config"] = json.dumps(config)
    with pytest.raises(StoreError) as err:
        store.load_network(path, "net")
    assert str(err.value).endswith("network 'net': the saved network fails validation: linear_decay: unknown setting "
                                   "'normalisation' (did you mean 'normalization'?); accepted: N, backend, init, "
                                   "n_frac, normalization, tau")


def test_settings_of_several_kinds_compose_and_check():
    declared = Settings(Real("tau", 0.02, "time constant", low=0, low_open=True, unit="ms"))
    assert declared.help_lines() == ["tau [ms]: time constant (a real number in (0, inf]; default 0.02)"]
    with pytest.raises(ConfigError, match=r"^x: tau must be in \(0, inf\], got 0$"):
        declared.resolve("x", {"tau": 0})


def test_a_misspelled_section_is_named_with_the_closest_one():
    s = spec()
    s["optimiser"] = s.pop("optimizer")
    with pytest.raises(ConfigError) as err:
        tcnet.run(s, progress=False)
    assert str(err.value) == ("run spec: unknown section(s) 'optimiser' (did you mean 'optimizer'?); a run spec has "
                              "dynamics, loss, optimizer")
