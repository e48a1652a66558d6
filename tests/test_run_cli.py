"""`tcnet run SPEC.toml`: a run spec file with a one-file plugin loss optimizes and stores exactly as
tcnet.run does; killed with SIGKILL and run again it resumes bit-identically; run again when done it
does not rerun; every bad key, bad file or bad plugin is one line, exit 2, before any file is
written. And `--plugin FILE` works before or after any command."""
import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import tcnet
from tcnet import store
from tcnet.cli import main
from tcnet.plugins import Registry

# A loss in one file, as in docs/PLUGINS.md, declaring its settings. `delay` sleeps per evaluation
# (to catch a run mid-way) and changes no value.
WIRING = '''"""Wiring cost of the low-rank perturbation of a preparatory network: scale ||U V||_F^2 / N."""
import time

import autograd.numpy as anp

from tcnet import Loss, hookimpl
from tcnet.settings import Real, Settings


class Wiring(Loss):
    """Mean squared synaptic weight of U V, the part of J the optimizer adds to J0."""

    name = "wiring"
    SETTINGS = Settings(Real("scale", 1.0, "factor of the cost", low=0, low_open=True),
                        Real("delay", 0.0, "sleep per evaluation", low=0, unit="s"))

    def __call__(self, state):
        if self.config["delay"]:
            time.sleep(self.config["delay"])
        UV = anp.dot(state.U, state.V)
        return self.config["scale"] * anp.sum(UV * UV) / state.dynamics.N


@hookimpl
def tcnet_losses():
    return [Wiring]
'''

ADAM, SGD = 150, 100


def spec_toml(delay=0.0, **edits) -> str:
    """A run spec file: linear_decay with decay, stability and the plugin's wiring term, Adam then
    SGD (both resume bitwise). `edits` replace lines by their start (a misspelling, say)."""
    lines = ['plugins = ["wiring.py"]', 'out = "runs/wiring.h5"', "",
             "[dynamics]", 'name = "linear_decay"', "seed = 3", "N = 12", "n_frac = 0.25", 'normalization = "none"', "",
             "[[loss]]", 'name = "decay"', "[[loss]]", 'name = "stability"', "weight = 1e5",
             "[[loss]]", 'name = "wiring"', "weight = 0.1", "scale = 2.0", f"delay = {delay}", "",
             "[optimizer]", 'name = "staged"', "[[optimizer.stages]]", 'name = "adam"', f"steps = {ADAM}",
             "lr = 0.01", "[[optimizer.stages]]", 'name = "sgd"', f"steps = {SGD}", "lr = 1e-4"]
    for start, line in edits.items():
        lines = [line if l.startswith(start) else l for l in lines]
    return "\n".join(lines) + "\n"


def spec_dict(delay=0.0) -> dict:
    """The same spec as tcnet.run takes it."""
    import tomllib
    d = tomllib.loads(spec_toml(delay))
    return {k: d[k] for k in ("dynamics", "loss", "optimizer")}


@pytest.fixture
def work(tmp_path):
    """A folder with the plugin file and an output folder `runs/`."""
    (tmp_path / "wiring.py").write_text(WIRING)
    (tmp_path / "runs").mkdir()
    return tmp_path


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted run, from Python."""
    path = tmp_path_factory.mktemp("ref") / "wiring.py"
    path.write_text(WIRING)
    return tcnet.run(spec_dict(), progress=False, plugins=Registry(files=[path]))


COLUMNS = ("step", "stage", "loss", "grad_norm", "terms/decay", "terms/stability", "terms/wiring")


def same_as_reference(record, reference):
    """Every stored value of the run equals the uninterrupted run's, bit for bit (wall time aside)."""
    for key in COLUMNS:
        assert np.array_equal(record.history[key], reference.history.column(key)), key
    for name, a in reference.final.arrays.items():
        assert np.array_equal(record.final.arrays[name], a), name


def test_run_spec_with_a_plugin_loss_optimizes_stores_and_is_not_rerun(work, reference, capsys):
    spec = work / "wiring.toml"
    spec.write_text(spec_toml())
    assert main(["run", str(spec), "--no-progress"]) == 0
    out = work / "runs" / "wiring.h5"
    rec = store.read_run(out, "run-0001")
    line = capsys.readouterr().out.strip()
    assert line == (f"run run-0001 -> {out}: loss {rec.history['loss'][0]:.6g} -> {rec.history['loss'][-1]:.6g}, "
                    f"finished, {ADAM + SGD + 1} steps (new run)")
    assert rec.status == "finished" and rec.history["loss"][-1] < rec.history["loss"][0]
    same_as_reference(rec, reference)
    # the resolved spec is stored: every default filled in, the plugin's too
    assert rec.spec == json.loads(json.dumps(reference.spec.as_dict()))
    assert rec.spec["loss"][2] == {"name": "wiring", "weight": 0.1, "label": "wiring", "scale": 2.0, "delay": 0.0}
    assert rec.spec["optimizer"]["stages"][1]["momentum"] == 0.0

    # run again: the finished run is reported, not rerun; --new runs it again as a new run
    assert main(["run", str(spec), "--no-progress"]) == 0
    assert "(already in the file, not run again; --new runs it again as a new run)" in capsys.readouterr().out
    assert store.list_runs(out) == ["run-0001"]
    assert main(["run", str(spec), "--no-progress", "--new", "-o", str(work / "other.h5")]) == 0
    assert main(["run", str(spec), "--no-progress", "--new"]) == 0
    assert store.list_runs(out) == ["run-0001", "run-0002"] and store.list_runs(work / "other.h5") == ["run-0001"]
    # another spec (a different seed) is another run
    spec.write_text(spec_toml(**{"seed": "seed = 4"}))
    assert main(["run", str(spec), "--no-progress"]) == 0
    assert store.list_runs(out)[-1] == "run-0003" and store.read_run(out, "run-0003").spec["dynamics"]["seed"] == 4


def test_run_killed_with_sigkill_resumes_bit_identically(work, reference, capsys):
    spec = work / "wiring.toml"
    spec.write_text(spec_toml(delay=0.01))
    out = work / "runs" / "wiring.h5"
    worker = subprocess.Popen([sys.executable, "-m", "tcnet.cli", "run", str(spec), "--no-progress"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline, steps = time.monotonic() + 120, 0
        while steps < 50:  # the writer's first flush: 50 steps
            assert worker.poll() is None, worker.stderr.read().decode()
            assert time.monotonic() < deadline, "no steps flushed in 120 s"
            time.sleep(0.05)
            try:
                steps = store.read_run(out, "run-0001").steps
            except (store.StoreError, OSError):  # the file or the run is not created yet
                pass
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait()
    assert worker.returncode == -signal.SIGKILL
    killed = store.read_run(out, "run-0001")
    assert killed.status == "interrupted" and killed.steps < ADAM + SGD + 1
    at = killed.checkpoint.step

    assert main(["run", str(spec), "--no-progress"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"resuming run run-0001 of {out} (interrupted at step {at})"
    assert lines[1].endswith(f"finished, {ADAM + SGD + 1} steps (resumed at step {at})")
    done = store.read_run(out, "run-0001")
    assert store.list_runs(out) == ["run-0001"] and list(done.attrs["resumed_at"]) == [at]
    same_as_reference(done, reference)  # Adam's moments and SGD continue bitwise


def test_a_run_without_a_checkpoint_is_started_again(work, capsys):
    """A run stopped before its first flush has nothing to continue from: a new run starts."""
    spec = work / "wiring.toml"
    spec.write_text(spec_toml())
    out = work / "runs" / "wiring.h5"

    class Stop:
        def start(self, spec, dynamics): pass
        def step(self, step): raise KeyboardInterrupt
        def finish(self, result, final): pass

    with pytest.raises(KeyboardInterrupt):
        tcnet.run(spec_dict(), recorders=[Stop(), store.RunWriter(out)], progress=False,
                  plugins=Registry(files=[work / "wiring.py"]))
    assert store.read_run(out, "run-0001").checkpoint is None
    assert main(["run", str(spec), "--no-progress"]) == 0
    assert capsys.readouterr().out.startswith(f"run run-0001 of this spec in {out} stopped before its first "
                                              "checkpoint: starting a new run\nrun run-0002 -> ")


def files(folder) -> list:
    """The files and folders under `folder`, but Python's bytecode cache of the plugin file."""
    return sorted(p for p in folder.rglob("*") if "__pycache__" not in p.parts)


@pytest.mark.parametrize("edit, line", [
    ({"out": 'outt = "runs/wiring.h5"'}, "wiring.toml: run spec: unknown setting 'outt' (did you mean 'out'?); "
     "accepted: dynamics, loss, optimizer, out, plugins"),
    ({"n_frac": "n_fac = 0.25"}, "wiring.toml: linear_decay: unknown setting 'n_fac' (did you mean 'n_frac'?)"),
    ({"weight = 1e5": "wieght = 1e5"}, "wiring.toml: stability: unknown setting 'wieght' (did you mean 'weight'?); "
     "accepted: label, weight"),
    ({"scale": "scael = 2.0"}, "wiring.toml: wiring: unknown setting 'scael' (did you mean 'scale'?)"),
    ({"scale": "scale = -1"}, "wiring.toml: wiring: scale must be in (0, inf], got -1"),
    ({"weight = 0.1": "weight = -0.1"}, "wiring.toml: wiring: weight must be in [0, inf], got -0.1"),
    ({f"steps = {SGD}": f"stpes = {SGD}"}, "wiring.toml: sgd: unknown setting 'stpes' (did you mean 'steps'?)"),
    ({'name = "decay"': 'name = "decayy"'}, "wiring.toml: unknown loss 'decayy' (did you mean 'decay'?)"),
    ({"plugins": 'plugins = ["wirin.py"]'}, "wiring.toml: plugins: no file 'wirin.py' (paths are relative to the "
     "spec file"),
    ({"[dynamics]": "[dynamics"}, "wiring.toml: not valid TOML ("),
])
def test_bad_specs_are_one_line_exit_2_and_write_nothing(work, capsys, monkeypatch, edit, line):
    monkeypatch.chdir(work)
    (work / "wiring.toml").write_text(spec_toml(**edit))
    before = files(work)
    assert main(["run", "wiring.toml", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"tcnet run: {line}") and err.count("\n") == 1, err
    assert files(work) == before  # no output file, no lock file


def test_a_spec_plugin_that_fails_to_import_is_refused(work, capsys):
    (work / "wiring.py").write_text("raise ValueError('broken on purpose')\n")
    (work / "wiring.toml").write_text(spec_toml())
    assert main(["run", str(work / "wiring.toml")]) == 2
    assert capsys.readouterr().err == (f"tcnet run: {work / 'wiring.toml'}: plugin file {work / 'wiring.py'} failed: "
                                       "ValueError: broken on purpose\n")
    assert not (work / "runs" / "wiring.h5").exists()


@pytest.mark.parametrize("where", ["before", "after"])
def test_plugin_option_before_or_after_the_command(work, capsys, where):
    plugin = ["--plugin", str(work / "wiring.py")]
    assert main([*plugin, "plugins", "wiring"] if where == "before" else ["plugins", "wiring", *plugin]) == 0
    assert capsys.readouterr().out.startswith(f"loss       wiring  file {work / 'wiring.py'}")
    # a spec without its own plugins list, the plugin given on the command line
    (work / "wiring.toml").write_text(spec_toml(**{"plugins": ""}).replace(f"steps = {ADAM}", "steps = 3"))
    run = ["run", str(work / "wiring.toml"), "--no-progress"]
    assert main([*plugin, *run] if where == "before" else [*run, *plugin]) == 0
    assert store.read_run(work / "runs" / "wiring.h5", "run-0001").status == "finished"


def test_plugin_option_after_a_nested_command_and_in_help(capsys):
    """Plugins' commands too, at any depth (`tcnet simpl generate`), and every --help says so."""
    from pathlib import Path
    plugin = str(Path(__file__).parent / "quadratic_plugin.py")
    with pytest.raises(SystemExit) as exit:
        main(["simpl", "generate", "--help", "--plugin", plugin])
    assert exit.value.code == 0
    assert "--plugin FILE" in capsys.readouterr().out
