"""Settings declared once (tcnet.settings): defaults, validation, the saved configuration and the
help text all come from the one declaration, for optimizers and dynamics."""
import numpy as np
import pytest

from tcnet import ConfigError, Dynamics, State
from tcnet.cli import main
from tcnet.optim import SGD, Adam, Iterative
from tcnet.settings import REQUIRED, Choice, Integer, Real, Setting, Settings, Text

DECLARED = Settings(
    Integer("steps", 100, "maximum number of updates", low=0),
    Real("lr", 0.01, "step size", low=0, low_open=True),
    Choice("mode", "qss", "how rates are computed", options=("qss", "trials")),
    Text("label", REQUIRED, "the label of a term"),
)


def test_declaration_gives_defaults_validation_and_help():
    assert DECLARED.names == ("steps", "lr", "mode", "label")
    assert DECLARED.defaults == {"steps": 100, "lr": 0.01, "mode": "qss", "label": REQUIRED}
    assert DECLARED.resolve("opt", {"label": "c", "lr": 0.5}) == {"steps": 100, "lr": 0.5, "mode": "qss", "label": "c"}
    bad = [({"label": "c", "lr": 0}, "opt: lr must be in (0, inf], got 0"),
           ({"label": "c", "steps": 1.5}, "opt: steps must be an integer, got 1.5"),
           ({"label": "c", "mode": "fast"}, "opt: mode must be one of 'qss', 'trials', got 'fast'"),
           ({}, "opt: label must be given: the label of a term (a non-empty string)"),
           ({"label": None}, "opt: label must be the label of a term (a non-empty string), got None"),
           ({"label": "c", "rate": 1}, "opt: unknown setting 'rate'; accepted: label, lr, mode, steps"),
           ({"label": "c", "stpes": 1}, "opt: unknown setting 'stpes' (did you mean 'steps'?); accepted: label, "
                                        "lr, mode, steps")]
    for given, message in bad:
        with pytest.raises(ConfigError) as err:
            DECLARED.resolve("opt", given)
        assert str(err.value) == message
    assert DECLARED.help_lines() == [
        "steps: maximum number of updates (an integer in [0, inf]; default 100)",
        "lr: step size (a real number in (0, inf]; default 0.01)",
        'mode: how rates are computed (one of "qss", "trials"; default "qss")',
        "label: the label of a term (a non-empty string; required)",
    ]


def test_adding_replaces_by_name_and_with_defaults_keeps_the_bounds():
    more = DECLARED + Settings(Real("lr", 0.1, "larger step", low=0), Setting("extra", [], "anything"))
    assert more.names == ("steps", "mode", "label", "lr", "extra") and more.defaults["lr"] == 0.1
    longer = DECLARED.with_defaults(steps=5000)
    assert longer.defaults["steps"] == 5000
    with pytest.raises(ConfigError, match="steps must be an integer in \\[0, inf\\], got -1"):
        longer.resolve("opt", {"label": "c", "steps": -1})
    with pytest.raises(KeyError, match="no declared setting\\(s\\) nope"):
        DECLARED.with_defaults(nope=1)


def test_optimizer_settings_and_saved_config_come_from_the_declaration():
    assert Adam(lr=0.1).config == {"name": "adam", "steps": 100, "lr": 0.1, "gtol": 0.0, "beta1": 0.9,
                                   "beta2": 0.999, "eps": 1e-7}
    assert SGD.SETTINGS.names == ("steps", "lr", "gtol", "momentum", "stability_check")
    with pytest.raises(ConfigError, match="sgd: momentum must be in \\[0, 1\\), got 1.0"):
        SGD(momentum=1.0)


def test_an_optimizer_with_a_plain_defaults_dict_is_refused_at_its_definition():
    """Settings have one declaration (SETTINGS); a `defaults` dict from older plugins is named."""
    with pytest.raises(TypeError, match="optimizer Plain: declare its settings as SETTINGS"):
        class Plain(Iterative):
            name = "plain"
            defaults = {"steps": 3, "lr": 0.5}

            def step(self, x, ev, opt_state):
                return x - self.settings["lr"] * ev.grad, {}


class Leaky(Dynamics):
    """x' = -x / tau, declared with a bounded time constant."""

    name = "leaky"
    trainable = ("a",)
    SETTINGS = Settings(Real("tau", 0.02, "time constant (s)", low=0, low_open=True),
                        Integer("n", 2, "number of units", low=1))

    @classmethod
    def create(cls, seed=0, **config):
        n = config.get("n", 2)
        return cls({"a": np.zeros(n if isinstance(n, int) and n > 0 else 1)}, config, seed)

    def make_state(self, params):
        return State(self, params)


def test_dynamics_config_is_completed_and_checked_from_its_declaration():
    assert Leaky.create().config == {"tau": 0.02, "n": 2}
    assert Leaky.create(n=3, tau=0.5).config == {"tau": 0.5, "n": 3}
    with pytest.raises(ConfigError, match="leaky: tau must be in \\(0, inf\\], got -1"):
        Leaky.create(tau=-1)
    with pytest.raises(ConfigError, match="leaky: unknown setting 'size'"):
        Leaky.create(size=3)


def test_cli_prints_a_plugins_settings(capsys):
    assert main(["plugins", "penalty"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:2] == ["optimizer", "penalty"]
    from tcnet.plugins import registry

    for line in registry().get("optimizer", "penalty").SETTINGS.help_lines():
        assert f"  {line}" in out
    assert main(["plugins", "chain"]) == 0 and "staged" in capsys.readouterr().out  # the former name
    assert main(["plugins", "nope"]) == 2
    assert capsys.readouterr().err.startswith("tcnet plugins: no plugin named 'nope'; registered: ")


def test_every_shipped_optimizer_declares_and_documents_each_setting():
    """One declaration per setting, with its doc, for every optimizer tcnet and its plugins ship
    (the E/I learning rules and their trial settings included)."""
    from tcnet.plugins import registry

    optimizers = [e for e in registry().all() if e.kind == "optimizer"]
    assert {"cross_homeostatic", "up_state", "penalty", "simpl", "adam"} <= {e.name for e in optimizers}
    for entry in optimizers:
        declared = entry.cls.SETTINGS
        assert declared, entry.name
        assert all(s.doc for s in declared), entry.name
        assert len(set(declared.names)) == len(declared.names), entry.name


def test_learning_rule_settings_are_checked_from_their_declarations():
    from tcnet_plugins.ei.optimizers import CrossHomeostatic, UpState

    assert UpState.SETTINGS.names[-1] == "reference" and CrossHomeostatic.SETTINGS.defaults["steps"] == 5000
    for given, message in [({"seed": -1}, "seed must be an integer in \\[0, 4294967295\\], got -1"),
                           ({"noise_relaxation": 2.0}, "noise_relaxation must be in \\[0, 1\\], got 2.0"),
                           ({"protocol": "nope"}, "protocol must be one of"),
                           ({"kick_onset": 400.0}, "kick_onset must be in \\[0, 300.0\\], got 400.0"),
                           ({"noise": 0.1}, "noise and clip need integrator = 'euler'")]:
        with pytest.raises(ConfigError, match="cross_homeostatic: " + message):
            CrossHomeostatic(**given)
    published = CrossHomeostatic(protocol="soldado2022", lr=1e-4)
    assert published.settings["trial_length"] == 2000.0 and published.settings["lr"] == 1e-4
    assert published.trial.clip == (100.0, 250.0)
