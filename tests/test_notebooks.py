"""The tutorial notebooks in examples/ run top to bottom in a real Jupyter kernel.

Each notebook is a jupytext percent-format .py file (the one source of the tutorial). The default
run executes every notebook with TCNET_FAST=1 (small networks, few steps); `-m slow` executes
them as shipped. A cell that raises fails the test (nbclient's CellExecutionError, with the
cell's traceback). Figures must render inline (PNG outputs); progress bars use tqdm's notebook
widget where ipywidgets is installed. The kernel is this interpreter (a kernel spec written for
the test), so the notebooks see the same installed tcnet as the tests.
"""
import json
import sys
from pathlib import Path

import jupytext
import nbclient
import pytest

EXAMPLES = Path(__file__).parent.parent / "examples"
NOTEBOOKS = sorted(p for p in EXAMPLES.glob("*.py") if "jupytext:" in p.read_text().split("# %%", 1)[0])
WIDGET = "application/vnd.jupyter.widget-view+json"


@pytest.fixture
def kernel(tmp_path, monkeypatch):
    """A kernel spec running this interpreter, found first on JUPYTER_PATH; the kernel gets the
    inline matplotlib backend (no MPLBACKEND inherited from the test run)."""
    spec = tmp_path / "jupyter" / "kernels" / "tcnet-test"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "tcnet (tests)", "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.delenv("MPLBACKEND", raising=False)
    return "tcnet-test"


def execute(path: Path, kernel: str, workdir: Path, timeout: int):
    nb = jupytext.read(path)
    nbclient.NotebookClient(nb, kernel_name=kernel, timeout=timeout,
                            resources={"metadata": {"path": str(workdir)}}).execute()
    return [o for cell in nb.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]


def test_the_seven_tutorials_are_notebooks():
    assert [p.name for p in NOTEBOOKS] == ["comparative_study.py", "ei_circuits.py", "ei_learning_rules.py",
                                           "loss_plugin.py", "saved_network.py", "simpl_gridcells.py",
                                           "trained_rate_network.py"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_in_fast_mode(path, kernel, tmp_path, monkeypatch):
    """Every tutorial runs, draws inline figures and shows its runs' progress as notebook widgets."""
    monkeypatch.setenv("TCNET_FAST", "1")
    outputs = execute(path, kernel, tmp_path, timeout=600)
    assert [o for o in outputs if "image/png" in o.get("data", {})], f"{path.name} drew no inline figure"
    assert [o for o in outputs if WIDGET in o.get("data", {})], f"{path.name} showed no progress widget"


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_as_shipped(path, kernel, tmp_path, monkeypatch):
    monkeypatch.delenv("TCNET_FAST", raising=False)
    outputs = execute(path, kernel, tmp_path, timeout=3600)
    assert [o for o in outputs if "image/png" in o.get("data", {})]


def test_make_notebooks_runs_them_headless_outside_the_source_tree(tmp_path):
    """examples/run_notebooks.py (`make notebooks`): the executed notebook lands in out/notebooks/,
    with its figures, the notebook's own files under out/<name>/, nothing new in examples/."""
    import subprocess

    before = sorted(p.name for p in EXAMPLES.iterdir())
    out = subprocess.run([sys.executable, str(EXAMPLES / "run_notebooks.py"), "--fast", "loss_plugin"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stdout + out.stderr[-2000:]
    assert out.stdout.startswith("loss_plugin: ok (") and out.stdout.rstrip().endswith(
        "-> out/notebooks/loss_plugin.ipynb")
    nb = json.loads((tmp_path / "out" / "notebooks" / "loss_plugin.ipynb").read_text())
    outputs = [o for c in nb["cells"] if c["cell_type"] == "code" for o in c.get("outputs", [])]
    assert [o for o in outputs if "image/png" in o.get("data", {})]
    assert (tmp_path / "out" / "loss_plugin").is_dir()
    assert sorted(p.name for p in EXAMPLES.iterdir()) == before


def test_make_notebooks_refuses_an_output_folder_in_the_source_tree(tmp_path):
    import subprocess

    out = subprocess.run([sys.executable, str(EXAMPLES / "run_notebooks.py"), "--out", str(EXAMPLES / "x")],
                         cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 2 and f"--out must be outside the source folder {EXAMPLES}" in out.stderr
