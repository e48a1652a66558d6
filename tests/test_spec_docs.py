"""docs/SPEC.md, executed: every TOML block is a whole file, named by its first line
(`# NAME.toml`). A run spec runs with `tcnet run` and stores its resolved spec; a study file (one
with [base]) runs every run of its study; a block followed by a console block is refused (by `tcnet run` or
`tcnet study`) exactly as that block shows, and nothing is written."""
import concurrent.futures
import re
import shlex
import tomllib
from pathlib import Path

import pytest

from tcnet import store
from tcnet.cli import main
from tcnet.plugins import registry
from tcnet.spec import RunSpec, SpecFile
from tcnet.study import Study

DOCS = Path(__file__).parents[1] / "docs"
BLOCKS = re.findall(r"```(\w+)\n(.*?)```", (DOCS / "SPEC.md").read_text(), flags=re.S)
EXAMPLES = [(body, BLOCKS[i + 1][1] if i + 1 < len(BLOCKS) and BLOCKS[i + 1][0] == "console" else None)
            for i, (lang, body) in enumerate(BLOCKS) if lang == "toml"]


def name(body: str) -> str:
    return re.fullmatch(r"# (\S+\.toml)", body.splitlines()[0]).group(1)


def test_every_example_names_its_file():
    assert len(EXAMPLES) >= 6
    names = [name(body) for body, _ in EXAMPLES]
    assert len(set(names)) == len(names)


@pytest.mark.parametrize("body, console", EXAMPLES, ids=[name(b) for b, _ in EXAMPLES])
def test_example(body, console, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    path = Path(name(body))
    path.write_text(body)
    included = tomllib.loads(body).get("study", {}).get("base")
    if included:  # a study that includes a run spec file of this page: that file beside it
        Path(included).write_text(next(b for b, _ in EXAMPLES if name(b) == included))
    plugins = tomllib.loads(body).get("plugins", [])
    if plugins == ["wiring.py"]:  # the one-file loss of docs/PLUGINS.md
        code = re.findall(r"```python\n(.*?)```", (DOCS / "PLUGINS.md").read_text(), flags=re.S)
        Path("wiring.py").write_text(next(b for b in code if "class Wiring" in b))
    else:
        assert not plugins
    if console is not None:  # an example of a refused spec: the command and its one line
        command, *expected = console.strip().splitlines()
        argv = shlex.split(command.removeprefix("$ "))
        assert argv[:2] in (["tcnet", "run"], ["tcnet", "study"])
        assert main(argv[1:]) == 2
        assert capsys.readouterr().err.splitlines() == expected
        assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]  # nothing written
    elif "base" in tomllib.loads(body) or included:
        study = Study.from_toml(path)
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            report = study.run(tmp_path / "study.h5", pool, progress=False)
        assert report.total > 1 and len(report.done) == report.total, report
    else:
        assert main(["run", str(path), "--no-progress"]) == 0
        spec = SpecFile.read(path)
        assert spec.out == Path(tomllib.loads(body).get("out", path.with_suffix(".h5").name))
        rec = store.read_run(spec.out, "run-0001")
        assert rec.status == "finished" and rec.steps > 1
        resolved = RunSpec.from_dict(rec.spec).resolve(registry([p.resolve() for p in spec.plugins]))
        assert rec.spec == resolved.as_dict()  # stored resolved: resolving it again changes nothing
        labels = {t["label"] for t in rec.spec["loss"]}
        assert {k[len("terms/"):] for k in rec.history if k.startswith("terms/")} == labels
