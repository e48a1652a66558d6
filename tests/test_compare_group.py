"""`tcnet compare --group`: repeats (runs differing only in their seed) pooled per setting."""
from pathlib import Path

import numpy as np
import pytest

import tcnet
from tcnet.cli import main
from tcnet.store import RunWriter, compare_table, group_rows

TESTS = Path(__file__).parent

C = np.array([1.0, -2.0, 0.5])
H = np.array([1.0, 4.0, 0.25])


@pytest.fixture
def repeats_file(tmp_path, point_plugins):
    """Two loss weights x three seeds, zero optimizer steps: each final loss is w q(x0(seed))."""
    path = tmp_path / "runs.h5"
    for weight in (1.0, 2.0):
        for seed in (3, 4, 5):
            spec = {"dynamics": {"name": "point", "seed": seed, "n": 3},
                    "loss": [{"name": "quadratic", "weight": weight}],
                    "optimizer": {"name": "sgd", "steps": 0}}
            tcnet.run(spec, recorders=[RunWriter(path)], plugins=point_plugins, progress=False)
    return path


def closed_form(weight, seed):
    x0 = np.random.default_rng(seed).normal(size=3)
    return weight * 0.5 * np.sum(H * (x0 - C) ** 2)


def test_group_rows_pool_seeds(repeats_file, point_plugins):
    groups = group_rows(compare_table([repeats_file], plugins=point_plugins))
    assert [g["loss.quadratic.weight"] for g in groups] == [1.0, 2.0]
    for g in groups:
        expected = [closed_form(g["loss.quadratic.weight"], s) for s in (3, 4, 5)]
        assert g["n"] == g["finished"] == 3 and g["failed"] == 0
        assert g["loss:mean"] == pytest.approx(np.mean(expected), rel=1e-12)
        assert g["loss:std"] == pytest.approx(np.std(expected, ddof=1), rel=1e-10)
        assert "dynamics.seed" not in g


def test_cli_compare_group_csv(repeats_file, capsys):
    code = main(["--plugin", str(TESTS / "quadratic_plugin.py"), "compare", str(repeats_file), "--group", "--csv"])
    lines = capsys.readouterr().out.strip().splitlines()
    header = lines[0].split(",")
    assert code == 0 and len(lines) == 3 and header[:4] == ["loss.quadratic.weight", "n", "finished", "failed"]
    first = dict(zip(header, lines[1].split(",")))
    assert float(first["loss:mean"]) == pytest.approx(np.mean([closed_form(1.0, s) for s in (3, 4, 5)]), rel=1e-6)
