"""Every failure of the `tcnet` command is one line on stderr: bad input (exit 2), Ctrl-C (130,
tests/test_store_failures.py), a bug here or in a plugin (70); `--debug` or TCNET_DEBUG=1 shows
the traceback instead."""
from pathlib import Path

import pytest

from tcnet.cli import main

RAISING_COMMAND = '''
from tcnet import hookimpl


def boom(args):
    return {}["missing"]


@hookimpl
def tcnet_commands(subparsers):
    subparsers.add_parser("boom").set_defaults(handler=boom)
'''


@pytest.fixture
def raising_plugin(tmp_path):
    path = tmp_path / "raising.py"
    path.write_text(RAISING_COMMAND)
    return str(path)


def test_a_plugin_command_that_raises_is_one_line(raising_plugin, capsys, monkeypatch):
    """Before: the KeyError's traceback."""
    monkeypatch.delenv("TCNET_DEBUG", raising=False)
    assert main(["--plugin", raising_plugin, "boom"]) == 70
    err = capsys.readouterr().err
    assert err.startswith("tcnet boom: internal error (plugin module tcnet_file_plugins.raising_")
    assert err.endswith("): KeyError: 'missing' (run again with --debug or TCNET_DEBUG=1 for the traceback, and "
                        "report it)\n")


@pytest.mark.parametrize("debug", [["--debug"], []])
def test_debug_shows_the_traceback(raising_plugin, capsys, monkeypatch, debug):
    monkeypatch.setenv("TCNET_DEBUG", "0" if debug else "1")
    with pytest.raises(KeyError, match="missing"):
        main([*debug, "--plugin", raising_plugin, "boom"])
    with pytest.raises(Exception, match="no such file"):  # a user error too, with its traceback
        main([*debug, "show", "/nonexistent.h5"])


# --- bad input, one line each (each of these was a traceback or a silent mistake before) -----------
STORE_PLUGIN = str(Path(__file__).parent / "plugins_for_tests" / "store_linear.py")


@pytest.fixture(scope="module")
def runs_file(tmp_path_factory):
    import tcnet
    from tcnet.plugins import Registry
    from tcnet.store import RunWriter
    path = tmp_path_factory.mktemp("runs") / "runs.h5"
    spec = {"dynamics": {"name": "store_linear", "seed": 2, "N": 3}, "loss": [{"name": "store_bowl"}],
            "optimizer": {"name": "adam", "steps": 3, "lr": 0.01}}
    tcnet.run(spec, recorders=[RunWriter(path)], progress=False, plugins=Registry(files=[STORE_PLUGIN]))
    return path


@pytest.mark.parametrize("argv, line", [
    (["train", "-N", "10", "-A", "1", "-L", "1", "--no-progress", "-r", "-1"], "tcnet train: --seed must be an integer in [0, 4294967295], got -1"),
    (["train", "-N", "10", "-A", "1", "-L", "1", "--no-progress", "-r", "99999999999999999999"],
     "tcnet train: --seed must be an integer in [0, 4294967295], got 99999999999999999999"),
    (["train", "-N", "10", "-A", "1", "-L", "1", "--no-progress", "-r", "4294967295", "-k", "2"], "tcnet train: --seed + --repeats - 1 (the last repeat's "
     "seed) must be an integer in [0, 4294967295], got 4294967296"),
    (["train", "-N", "10", "-A", "1", "-L", "1", "--no-progress", "-f", ""], "tcnet train: -f/--file must be the path of the HDF5 file of the runs, got ''"),
    (["simulate", "{runs}", "run-0001", "--seed", "-1"],
     "tcnet simulate: --seed must be an integer in [0, 4294967295], got -1"),
    (["simpl", "generate", "{tmp}/g.h5", "--seed", "-3"],
     "tcnet simpl: --seed must be an integer in [0, 4294967295], got -3"),
    (["study", "{toml}", "-o", "{tmp}/s.h5", "--dask-scheduler", "not a url"],
     "tcnet study: --dask-scheduler must be the address of a running dask scheduler (e.g. tcp://host:8786), got "
     "'not a url'"),
    (["study", "{missing_plugin_toml}", "-o", "{tmp}/s.h5"], "tcnet study: plugin file(s) {tmp}/nowhere.py do not "
     "exist (plugins are paths relative to the study file)"),
])
def test_bad_input_is_one_line(argv, line, runs_file, tmp_path, capsys):
    toml = Path(__file__).parents[1] / "data" / "studies" / "preparatory_small.toml"
    missing = tmp_path / "m.toml"
    recipe = toml.parents[2] / "plugins" / "preparatory" / "recipe.toml"  # the copy's base, from elsewhere
    missing.write_text(toml.read_text().replace("[study]\n", '[study]\nplugins = ["nowhere.py"]\n', 1)
                       .replace("../../plugins/preparatory/recipe.toml", str(recipe)))
    fill = dict(runs=runs_file, tmp=tmp_path, toml=toml, missing_plugin_toml=missing)
    assert main([a.format(**fill) for a in argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(line.format(**fill)), err
    assert not (tmp_path / "s.h5").exists() and not (tmp_path / "g.h5").exists()


def test_compare_lists_a_file_given_twice_once(runs_file, capsys):
    """Before: every run twice."""
    assert main(["--plugin", STORE_PLUGIN, "compare", str(runs_file), str(runs_file.parent / "." / runs_file.name)]) == 0
    rows = capsys.readouterr().out.splitlines()[1:]
    assert [r.split()[1] for r in rows] == ["run-0001"]


def test_the_same_plugin_file_twice_loads_once(capsys):
    """Before: pluggy's 'Plugin name already registered' traceback."""
    assert main(["--plugin", STORE_PLUGIN, "--plugin", STORE_PLUGIN, "plugins"]) == 0
    out, err = capsys.readouterr()
    assert err == "" and sum("store_bowl" in line for line in out.splitlines()) == 1


def test_a_hook_with_a_wrong_signature_is_one_line(tmp_path, capsys):
    """Before: pluggy's PluginValidationError took the whole CLI down with a traceback."""
    bad = tmp_path / "bad_hook.py"
    bad.write_text("from tcnet import hookimpl\n\n\n@hookimpl\ndef tcnet_losses(registry):\n    return []\n")
    assert main(["--plugin", str(bad), "plugins"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith(f"tcnet: plugin file {bad} failed: PluginValidationError:") and err.count("\n") == 1


def test_eig_of_an_empty_matrix_has_the_empty_gradient():
    """Before: 'zero-size array to reduction operation maximum' in the VJP."""
    import autograd.numpy as anp
    import numpy as np
    from autograd import grad

    from tcnet.linalg import eig
    g = grad(lambda A: anp.sum(anp.abs(eig(A)[0])) + anp.sum(anp.abs(eig(A)[1])))(np.zeros((0, 0)))
    assert g.shape == (0, 0)
