"""docs/PLUGINS.md's worked example, executed: the file it shows is found, composes with built-in
terms, has a correct gradient, and changes what the optimizer finds."""
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import tcnet
from tcnet.plugins import Registry
from tcnet.spec import build_objective

DOC = Path(__file__).parents[1] / "docs" / "PLUGINS.md"


def blocks(lang):
    return re.findall(rf"```{lang}\n(.*?)```", DOC.read_text(), flags=re.S)


def doc_file(tmp_path_factory, name, marker):
    """The docs' python block containing `marker`, saved as `name`."""
    path = tmp_path_factory.mktemp("doc") / name
    path.write_text(next(b for b in blocks("python") if marker in b))
    return path


@pytest.fixture(scope="module")
def wiring_file(tmp_path_factory):
    return doc_file(tmp_path_factory, "wiring.py", "class Wiring")


@pytest.fixture(scope="module")
def rmsprop_file(tmp_path_factory):
    return doc_file(tmp_path_factory, "rmsprop.py", "class RMSprop")


@pytest.mark.parametrize("kind, name, fixture", [("loss", "wiring", "wiring_file"),
                                                 ("optimizer", "rmsprop", "rmsprop_file")])
def test_cli_lists_the_doc_plugins(kind, name, fixture, request):
    path = request.getfixturevalue(fixture)
    out = subprocess.run([sys.executable, "-m", "tcnet.cli", "--plugin", str(path), "plugins"],
                         capture_output=True, text=True)
    row = [l.split() for l in out.stdout.splitlines() if l.split()[:2] == [kind, name]]
    assert row and row[0][2:] == ["file", str(path)]


def test_doc_loss_value_and_gradient(wiring_file):
    plugins = Registry(files=[wiring_file])
    dyn = plugins.get("dynamics", "linear_decay").create(seed=1, N=12, n_frac=0.25)
    objective = build_objective(dyn, [{"name": "wiring", "scale": 2.0}], plugins)
    theta = dyn.vector()
    s = dyn.state()
    UV = np.asarray(s.U) @ np.asarray(s.V)
    ev = objective.evaluate(theta)
    assert ev.value == pytest.approx(2.0 * np.sum(UV**2) / 12, rel=1e-13)
    rng = np.random.default_rng(0)
    for _ in range(3):  # central finite differences along random directions
        d = rng.standard_normal(theta.size)
        h = 1e-5
        fd = (objective(theta + h * d) - objective(theta - h * d)) / (2 * h)
        assert ev.grad @ d == pytest.approx(fd, rel=1e-7)


def test_doc_example_runs_and_the_new_term_matters(wiring_file, monkeypatch):
    monkeypatch.chdir(wiring_file.parent)
    source = blocks("python")[1].replace("tcnet.run(spec, plugins=plugins)",
                                         "tcnet.run(spec, plugins=plugins, progress=False)")
    scope = {}
    exec(compile(source, "PLUGINS.md example", "exec"), scope)
    out = scope["out"]
    assert out.result.status in ("converged", "max_steps", "no_progress")
    spec = dict(scope["spec"], loss=[t for t in scope["spec"]["loss"] if t["name"] != "wiring"])
    baseline = tcnet.run(spec, plugins=scope["plugins"], progress=False)
    wiring = Registry(files=[wiring_file]).get("loss", "wiring")()
    cost_with = wiring(out.final.state())
    cost_without = wiring(baseline.final.state())
    assert cost_with < 0.9 * cost_without  # the weighted wiring term buys a cheaper perturbation
    assert np.all(np.isfinite(out.history.column("terms/wiring")))


def test_doc_optimizer_is_its_update_rule_and_resumes_exactly(rmsprop_file):
    """The one-file rule, run by the shared loop, follows a plain RMSprop loop written here step by
    step on the quadratic 0.5 sum h (x - c)^2 of the test plugin, and resumes bitwise."""
    plugins = Registry(files=[rmsprop_file, Path(__file__).parent / "quadratic_plugin.py"])
    spec = {"dynamics": {"name": "point", "seed": 4}, "loss": [{"name": "quadratic"}],
            "optimizer": {"name": "rmsprop", "steps": 30, "lr": 0.05, "rho": 0.8}}
    out = tcnet.run(spec, plugins=plugins, progress=False)
    c, h = np.array([1.0, -2.0, 0.5]), np.array([1.0, 4.0, 0.25])
    x, v, losses = out.initial.vector(), 0.0, []
    for _ in range(31):
        losses.append(0.5 * np.sum(h * (x - c) ** 2))
        g = h * (x - c)
        v = 0.8 * v + 0.2 * g * g
        x = x - 0.05 * g / (np.sqrt(v) + 1e-8)
    np.testing.assert_allclose(out.history.column("loss"), losses, rtol=1e-13)
    assert out.result.status == "max_steps" and out.result.steps == 30 and out.result.evaluations == 31
    cut = out.history.steps[12]
    resumed = tcnet.run(spec, plugins=plugins, progress=False, resume=tcnet.Checkpoint.at(cut))
    assert [s.step for s in resumed.history.steps] == list(range(13, 31))
    assert np.array_equal(resumed.result.x, out.result.x)


def test_doc_objective_by_hand_and_gradient_check_run(wiring_file, monkeypatch, capsys):
    """The 'Testing a plugin' blocks, executed in the folder of wiring.py: their own asserts hold."""
    monkeypatch.chdir(wiring_file.parent)
    scope = {}
    for marker in ("objective = Objective(net", "report = check_gradient(objective)"):
        source = next(b for b in blocks("python") if marker in b)
        exec(compile(source, "PLUGINS.md testing", "exec"), scope)
    assert scope["report"].ok and len(scope["report"].rows) == 3 * 2 * 2  # points x terms x arrays
    assert capsys.readouterr().out.splitlines()[1].startswith("gradient check: 12 of 12 agree")


def test_doc_test_suite_template_passes(wiring_file, tmp_path):
    """The test suite to copy, run by pytest beside a copy of wiring.py: every test passes."""
    (tmp_path / "wiring.py").write_text(wiring_file.read_text())
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_wiring.py").write_text(next(b for b in blocks("python") if "def test_it_loads" in b))
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"], cwd=tmp_path,
                         capture_output=True, text=True)
    assert out.returncode == 0 and "5 passed" in out.stdout, out.stdout[-2000:]
