"""An exception inside a loss names the loss, its term, its settings and the step; an autograd
mistake (numpy on a traced array, a primitive without a VJP) says what to do about it."""
import textwrap

import numpy as np
import pytest

import tcnet
from tcnet.cli import main
from tcnet.loss import LossError
from tcnet.plugins import Registry

PLUGIN = '''
import numpy as np
import autograd.numpy as anp
from autograd.extend import defvjp, primitive

from tcnet import Loss, hookimpl
from tcnet.settings import Integer, Real, Settings


class Wrong(Loss):
    """Tr J through float(): fine without a gradient, not with one."""
    name = "numpy_norm"
    SETTINGS = Settings(Real("scale", 1.0, "factor"))

    def __call__(self, state):
        return self.config["scale"] * float(np.trace(state.J)) + anp.sum(state.J ** 2)


class Late(Loss):
    """Raises from step `fail_at` on (the state's counter is the objective's evaluations)."""
    name = "late"
    SETTINGS = Settings(Integer("fail_at", 2, "evaluation that raises", low=0))
    calls = [0]

    def __call__(self, state):
        self.calls[0] += 1
        if self.calls[0] > self.config["fail_at"]:
            raise ValueError("out of range")
        return anp.sum(state.J ** 2)


@primitive
def opaque(x):
    return np.sum(x ** 2)


def broken_vjp(ans, x):
    def vjp(g):
        raise ValueError("broken vjp")
    return vjp


defvjp(opaque, broken_vjp)


class NoVjp(Loss):
    """A primitive whose VJP raises: autograd fails in the backward pass only."""
    name = "no_vjp"

    def __call__(self, state):
        return opaque(state.J)


@hookimpl
def tcnet_losses():
    return [Wrong, Late, NoVjp]
'''
ADAM = {"name": "adam", "steps": 5, "lr": 0.01}


@pytest.fixture
def plugins(tmp_path):
    path = tmp_path / "errs.py"
    path.write_text(PLUGIN)
    return Registry(files=[path])


def spec(*loss):
    return {"dynamics": {"name": "linear_decay", "N": 6, "n_frac": 0.34},
            "loss": [{"name": "decay"}, *loss], "optimizer": ADAM}


def test_numpy_on_a_traced_array_names_the_loss_settings_step_and_the_fix(plugins):
    with pytest.raises(LossError) as err:
        tcnet.run(spec({"name": "numpy_norm", "scale": 2.0}), plugins=plugins, progress=False)
    message = str(err.value)
    assert message.startswith("loss 'numpy_norm' (term 'numpy_norm', weight 1, settings {\"scale\": 2.0}): "
                              "it raised at step 0: TypeError: ")
    assert "ArrayBox" in message and message.endswith(
        "(autograd traced a parameter into code it cannot differentiate: use autograd.numpy (not numpy) on "
        "anything that depends on the parameters, and no in-place assignment to such arrays (docs/PLUGINS.md))")
    assert isinstance(err.value.__cause__, TypeError)


def test_an_exception_later_in_a_run_names_its_step(plugins):
    with pytest.raises(LossError, match=r"^loss 'late' \(term 'late', weight 1, settings \{\"fail_at\": 3\}\): "
                       r"it raised at step 3: ValueError: out of range$"):
        tcnet.run(spec({"name": "late", "fail_at": 3}), plugins=plugins, progress=False)


def test_a_failing_backward_pass_names_the_term_whose_gradient_fails(plugins):
    with pytest.raises(LossError, match=r"^loss 'no_vjp' \(term 'no_vjp', weight 0.5, settings \{\}\): its "
                       r"gradient raised at step 0: ValueError: broken vjp$"):
        tcnet.run(spec({"name": "no_vjp", "weight": 0.5}), plugins=plugins, progress=False)


def test_the_cli_prints_it_in_one_line(plugins, tmp_path, capsys):
    path = tmp_path / "errs.py"
    (tmp_path / "s.toml").write_text(textwrap.dedent(f"""
        plugins = ["errs.py"]
        [dynamics]
        name = "linear_decay"
        N = 6
        n_frac = 0.34
        [[loss]]
        name = "numpy_norm"
        [optimizer]
        name = "adam"
        steps = 3
    """))
    assert path.exists()
    code = main(["run", str(tmp_path / "s.toml"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 70 and err.count("\n") == 1
    assert err.startswith("tcnet run: internal error: LossError: loss 'numpy_norm' (term 'numpy_norm', weight 1, "
                          "settings {\"scale\": 1.0}): it raised at step 0: TypeError:")
