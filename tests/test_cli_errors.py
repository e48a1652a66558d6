"""Every failure of the `tcnet` command is one line on stderr: bad input (exit 2), Ctrl-C (130,
tests/test_store_failures.py), a bug here or in a plugin (70); `--debug` or TCNET_DEBUG=1 shows
the traceback instead."""
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
