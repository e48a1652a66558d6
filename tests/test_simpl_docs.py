"""docs/SIMPL.md's command lines, executed: every `tcnet simpl ...` line of its command-line section
runs (every optional flag given) on a small recording of the file type it names, and every number
it shows for a setting is that setting's default (issue 28: the usage line showed `--bandwidth
0.025` while the default was 0.02)."""
import re
import shlex
from pathlib import Path

import numpy as np
import pytest

from tcnet.cli import main
from tcnet_plugins.simpl import data as simdata
from tcnet_plugins.simpl.dynamics import SPACE_DEFAULTS
from tcnet_plugins.simpl.estimator import KEYWORDS

DOC = (Path(__file__).parents[1] / "docs" / "SIMPL.md").read_text()
SECTION = DOC[DOC.index("## From the command line: files"):]
FIT_LINES = re.findall(r"^    (tcnet simpl fit .*(?:\n {34}\[.*)*)", SECTION, flags=re.M)
GENERATE = re.search(r"`(tcnet simpl generate [^`]*)`", SECTION).group(1)


def words(line) -> list[str]:
    """The command's words with every optional [--flag value] given."""
    return shlex.split(line.replace("[", " ").replace("]", " "))[1:]


def test_the_section_has_its_command_lines():
    assert len(FIT_LINES) == 2 and {Path(shlex.split(line)[3]).suffix for line in FIT_LINES} == {".npz", ".nwb"}


@pytest.mark.parametrize("line", FIT_LINES)
def test_every_number_shown_is_the_default(line):
    settings = {s.name.replace("_", "-"): s for s in KEYWORDS}
    shown = re.findall(r"\[--([\w-]+) ([-\d.]+)\]", line)
    assert shown or "recording.nwb" in line
    for flag, value in shown:
        s = settings[flag]
        default = SPACE_DEFAULTS["linear"].get(s.name) if s.default is None else s.default
        if default is not None:  # dt has none
            assert float(value) == default, (flag, value, default)


@pytest.fixture
def recordings(tmp_path, monkeypatch):
    """recording.npz (head direction with its truth) and recording.nwb (the same, a CompassDirection
    series 'heading' in degrees) in the working directory."""
    from test_simpl_nwb import spike_times, write_nwb

    monkeypatch.chdir(tmp_path)
    d = simdata.generate(7, kind="head_direction", n_cells=20, duration=120.0)
    np.savez("recording.npz", counts=d["counts"], behaviour=d["behaviour"], time=d["time"], truth=d["truth"])
    write_nwb(tmp_path / "recording.nwb", spike_times(d["counts"], d["time"]), np.rad2deg(d["behaviour"][:, 0]),
              compass=True, unit="degrees", timestamps=d["time"])
    return tmp_path


@pytest.mark.parametrize("line", FIT_LINES)
def test_every_fit_line_runs(line, recordings, capsys):
    assert main(words(line)) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "read recording." in out
    if "--dry-run" in line:
        assert "space angular" in out and "dry run: nothing fitted" in out
    else:
        assert "error (deg)" in out and Path("fit.npz").is_file() and Path("runs.h5").is_file()


@pytest.mark.parametrize("kind", GENERATE.split("--kind ")[1].split("|"))
def test_the_generate_line_runs_for_every_kind(kind, tmp_path, monkeypatch, capsys):
    """The documented line with one kind, at a small size (--cells, --duration)."""
    monkeypatch.chdir(tmp_path)
    line = GENERATE.split("--kind ")[0] + f"--kind {kind} --cells 5 --duration 30"
    assert main(words(line)) == 0, capsys.readouterr().err
    assert Path("OUT.h5").is_file() and f"wrote OUT.h5: {kind}" in capsys.readouterr().out
