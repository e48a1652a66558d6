"""Plugin discovery: entry points, single files, failures reported by name, duplicates, the CLI."""
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import tcnet
from tcnet.cli import main
from tcnet.plugins import PluginError, PluginWarning, Registry, UnknownPluginError

TESTS = Path(__file__).parent


def write(tmp_path, name, body):
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return path


def test_core_optimizers_come_from_the_entry_point():
    reg = Registry()
    for name in ("sgd", "adam", "lbfgs", "staged"):
        assert reg.entries["optimizer"][name].source.startswith("entry point core (tcnet.optim)")


def test_file_plugin_is_registered_with_its_source(point_plugins):
    entry = point_plugins.entries["dynamics"]["point"]
    assert entry.source == f"file {TESTS / 'quadratic_plugin.py'}"
    assert set(point_plugins.entries["loss"]) >= {"quadratic", "logbarrier"}


def test_broken_file_is_reported_and_others_still_load(tmp_path):
    broken = write(tmp_path, "broken.py", "import tcnet\nraise RuntimeError('boom at import')\n")
    bad_hook = write(tmp_path, "badhook.py", """
        from tcnet import hookimpl
        @hookimpl
        def tcnet_losses():
            raise ValueError("no losses today")
    """)
    with pytest.warns(PluginWarning):
        reg = Registry(files=[broken, bad_hook, TESTS / "quadratic_plugin.py"])
    messages = [str(f) for f in reg.failures]
    assert f"plugin file {broken} failed: RuntimeError: boom at import" in messages
    assert f"plugin file {bad_hook} failed: ValueError: no losses today" in messages
    assert "point" in reg.entries["dynamics"] and "adam" in reg.entries["optimizer"]


def test_duplicate_name_names_both_sources(tmp_path):
    dupe = write(tmp_path, "dupe.py", """
        from tcnet import hookimpl
        from tcnet.optim import SGD
        class Other(SGD):
            name = "adam"
        @hookimpl
        def tcnet_optimizers():
            return [Other]
    """)
    with pytest.raises(PluginError) as err:
        Registry(files=[dupe])
    assert str(err.value) == f"optimizer 'adam' is registered twice: by entry point core (tcnet.optim) " \
        f"[tcnet {tcnet.__version__}] and by file {dupe}"


def test_unknown_name_lists_registered_ones(point_plugins):
    with pytest.raises(UnknownPluginError, match="unknown loss 'nope'; registered: .*logbarrier.*quadratic"):
        point_plugins.get("loss", "nope")


def test_run_with_a_file_plugin_reaches_the_closed_form_minimum(point_plugins):
    spec = {"dynamics": {"name": "point", "seed": 4, "n": 3}, "loss": [{"name": "quadratic"}],
            "optimizer": {"name": "staged", "stages": [{"name": "adam", "steps": 10},
                                                      {"name": "lbfgs", "gtol": 1e-10, "ftol": 0.0}]}}
    out = tcnet.run(spec, plugins=point_plugins, progress=False)
    np.testing.assert_allclose(out.final.arrays["x"], [1.0, -2.0, 0.5], atol=1e-8)
    assert np.array_equal(out.history.column("step"), np.arange(len(out.history.steps)))
    assert out.initial.seed == 4 and out.result.status == "converged"


@pytest.mark.parametrize("name", ["missing.py", "plugin.txt"])
def test_a_plugin_file_that_is_not_there_is_a_usage_error(tmp_path, capsys, name):
    """A mistyped --plugin is refused before the command runs (was: listed as a failed plugin,
    then the command ran without it)."""
    if name.endswith(".txt"):
        (tmp_path / name).write_text("from tcnet import hookimpl\n")
    out = tmp_path / "runs.h5"
    code = main(["--plugin", str(tmp_path / name), "train", "-N", "20", "-A", "1", "-L", "1", "-f", str(out),
                 "--no-progress"])
    captured = capsys.readouterr()
    assert code == 2 and captured.out == "" and not out.exists()
    assert captured.err == (f"tcnet: plugin file {tmp_path / name}: no such file (a single-file plugin, .py, "
                            "is expected)\n")


def test_cli_refuses_a_broken_file(tmp_path, capsys):
    """A --plugin file that does not load is an error on the command line (exit 2, one line naming
    it), whatever the command: what it registers would be missing from the command."""
    broken = write(tmp_path, "broken_cli.py", "def broken(:\n")
    code = main(["--plugin", str(broken), "--plugin", str(TESTS / "quadratic_plugin.py"), "plugins"])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert err.startswith(f"tcnet: plugin file {broken} failed: SyntaxError:") and err.count("\n") == 1


def test_a_file_that_registers_nothing_is_an_error_on_the_cli_and_a_warning_in_python(tmp_path, capsys):
    bare = write(tmp_path, "bare.py", """
        from tcnet import Loss
        class Bare(Loss):
            name = "bare"
            def __call__(self, state):
                return 0.0
        def tcnet_losses():
            return [Bare]
    """)
    message = (f"plugin file {bare} registers nothing: no function decorated with @tcnet.hookimpl "
               "(tcnet_losses is not decorated)")
    assert main(["--plugin", str(bare), "plugins"]) == 2
    assert capsys.readouterr().err == f"tcnet: {message}\n"
    with pytest.warns(PluginWarning) as caught:
        reg = Registry(files=[bare])
    assert [str(w.message) for w in caught] == [message]
    assert "bare" not in reg.entries["loss"]


def test_a_broken_file_warns_in_python_naming_it(tmp_path):
    broken = write(tmp_path, "broken_py.py", "raise RuntimeError('boom at import')\n")
    with pytest.warns(PluginWarning, match=f"^plugin file {broken} failed: RuntimeError: boom at import$"):
        Registry(files=[broken])


def test_console_script_version_and_help():
    exe = [sys.executable, "-m", "tcnet.cli"]
    version = subprocess.run([*exe, "--version"], capture_output=True, text=True, check=True)
    assert version.stdout.strip() == f"tcnet {tcnet.__version__}"
    helptext = subprocess.run([*exe, "plugins", "--help"], capture_output=True, text=True, check=True)
    assert "usage: tcnet plugins" in helptext.stdout
