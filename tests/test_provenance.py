"""The code a run ran with (issue 27, item 9): every run records the SHA-256 of the source file of
each plugin class its spec names (the run attribute `code`, docs/FORMAT.md), and a study that keeps
stored runs, or a resume, warns naming the plugin file that changed since. Before: a study rerun
after its plugin file was edited silently reused the runs computed with the old code."""
import hashlib
import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from tcnet.cli import main
from tcnet.provenance import CodeChangedWarning, changed_files, code_digests, recorded_code
from tcnet.plugins import registry
from tcnet.resume import resume
from tcnet.store import read_run

TESTS = Path(__file__).parent
STUDY = ('[study]\nname = "cc"\nplugins = ["qp.py"]\nrepeats = 2\n[base.dynamics]\nname = "point"\n'
         '[[base.loss]]\nname = "quadratic"\n[base.optimizer]\nname = "adam"\nsteps = 2\n')


@pytest.fixture
def study(tmp_path, monkeypatch):
    shutil.copy(TESTS / "quadratic_plugin.py", tmp_path / "qp.py")
    (tmp_path / "s.toml").write_text(STUDY)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_each_run_records_the_digest_of_its_plugin_files(study):
    assert main(["study", "s.toml", "-o", "cc.h5", "--workers", "1", "--no-progress"]) == 0
    plugin = str((study / "qp.py").resolve())
    digest = "sha256:" + hashlib.sha256((study / "qp.py").read_bytes()).hexdigest()
    with h5py.File(study / "cc.h5", "r") as f:
        codes = [json.loads(f["runs"][k].attrs["code"]) for k in f["runs"]]
    assert len(codes) == 2 and all(code[plugin] == digest for code in codes)
    assert all(Path(path).name == "optim.py" for code in codes for path in code if path != plugin)  # adam's


def test_a_study_rerun_after_its_plugin_changed_says_so(study, capsys):
    assert main(["study", "s.toml", "-o", "cc.h5", "--workers", "1", "--no-progress"]) == 0
    assert main(["study", "s.toml", "-o", "cc.h5", "--workers", "1", "--no-progress"]) == 0
    assert "warning" not in capsys.readouterr().err  # same code: nothing to say
    with open(study / "qp.py", "a") as f:
        f.write("# edited\n")
    assert main(["study", "s.toml", "-o", "cc.h5", "--workers", "1", "--no-progress"]) == 0
    lines = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert lines == [f"tcnet study: warning: study cc: 2 run(s) in the file were computed with other code than now: "
                     f"{(study / 'qp.py').resolve()} changed since (the digest recorded with the run differs); they "
                     "are kept as they are (a new output file computes them again)"]


def test_resume_after_the_plugin_changed_says_so(study):
    plugin = study / "qp.py"
    plugins = registry([plugin])
    spec = {"dynamics": {"name": "point", "seed": 1}, "loss": [{"name": "quadratic"}],
            "optimizer": {"name": "adam", "steps": 4}}
    from tcnet import run
    from tcnet.store import RunWriter
    writer = RunWriter(study / "r.h5")
    run(spec, recorders=[writer], progress=False, plugins=plugins)
    with h5py.File(study / "r.h5", "a") as f:  # as a killed run leaves it, for resume to take
        f["runs"][writer.run_id].attrs["status"] = np.bytes_("interrupted")
    plugin.write_text(plugin.read_text() + "# edited\n")
    with pytest.warns(CodeChangedWarning, match=f"the steps so far of run 'run-0001' were computed with other code "
                      f"than now: {plugin.resolve()} changed since .*; it goes on with the current code"):
        resume(study / "r.h5", writer.run_id, plugins=registry([plugin]))


def test_changed_files_and_a_run_without_code():
    plugins = registry()
    spec = {"dynamics": {"name": "linear_decay"}, "loss": [{"name": "decay"}],
            "optimizer": {"name": "staged", "stages": [{"name": "adam"}, {"name": "lbfgs"}]}}
    code = code_digests(spec, plugins)
    assert sorted(Path(p).name for p in code) == ["dynamics.py", "losses.py", "optim.py"]
    assert changed_files(code, code) == []
    assert changed_files({**code, "/gone.py": "sha256:0"}, code) == ["/gone.py"]
    assert recorded_code({}) == {} and recorded_code({"code": "not json"}) == {}


def test_a_store_of_the_previous_version_reads_without_code():
    rec = read_run(TESTS / "data" / "store_v2.h5", "run-0001")
    assert recorded_code(rec.attrs) == {}
