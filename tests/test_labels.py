"""A dynamics declares its labels, units and headline metrics; the framework shows what it declares
(study tables and figures, the simulate printout) and names no model itself."""
import re
from pathlib import Path

import numpy as np
import pytest

from tcnet import store
from tcnet.cli import main
from tcnet.labels import Labels, Quantity
from tcnet.plot import default_metrics, label
from tcnet.plugins import registry
from tcnet.study import Table

FRAMEWORK = Path(__file__).parent.parent / "tcnet"


def table(labels):
    row = {"dynamics.N": 50, "dynamics.n_frac": 0.1, "n": 2, "finished": 2, "failed": 0}
    metrics = ["loss", "terms/decay", "summary/spectral_abscissa", "summary/t_1pct", "summary/t_5pct"]
    for i, m in enumerate(metrics):
        row[f"{m}:mean"], row[f"{m}:std"] = float(i), 0.5
    return Table(["dynamics.N", "dynamics.n_frac"], metrics, [row], labels)


def test_the_study_table_and_figures_show_the_declared_labels_and_headline_metrics():
    labels = registry().get("dynamics", "linear_decay").labels
    t = table(labels)
    assert default_metrics(t) == ["loss", "summary/t_1pct", "summary/t_5pct"]
    assert label(t, "dynamics.n_frac") == "n/N"
    assert label(t, "summary/t_1pct") == "decay time to 1 % of |x0| (s) (final network)"
    assert label(t, "terms/decay") == "final decay" and label(t, "loss") == "final loss"
    head = t.format().splitlines()[0].split()
    assert head == ["dynamics.N", "dynamics.n_frac", "n", "finished", "failed", "loss", "terms/decay", "summary/t_1pct",
                    "summary/t_5pct"]


def test_without_a_declaration_the_framework_shows_raw_keys_and_the_terms():
    t = table(Labels())
    assert default_metrics(t) == ["loss", "terms/decay"]
    assert label(t, "dynamics.n_frac") == "n_frac"
    assert label(t, "summary/t_1pct") == "t_1pct (final network)"
    assert "summary/t_1pct" not in t.format().splitlines()[0]


def test_quantity_text_and_undeclared_keys():
    assert str(Quantity("rate", "Hz")) == "rate (Hz)" and str(Quantity("n/N")) == "n/N"
    labels = Labels(config={"g": Quantity("gain", "1/s")})
    assert labels.of_config("g") == "gain (1/s)" and labels.of_config("h") == "h"
    with pytest.raises(TypeError):
        labels.config["h"] = Quantity("h")  # a declaration is read-only


def simulate_cli(capsys, path, network, *argv):
    assert main(["simulate", str(path), network, *argv]) == 0
    return capsys.readouterr().out.splitlines()


def test_simulate_prints_what_each_dynamics_declares(capsys, tmp_path):
    """linear_decay: norm crossing times, time in s; ei_rate: the final E and I rates, time in ms.
    With J0 = 0 and V = 0 (allowed under normalization 'none') J = 0, every linear_decay trajectory
    is x0 exp(-t/tau), and |x| falls to 1/e at t = tau and to 0.1 at t = tau ln 10."""
    plugins = registry()
    path = tmp_path / "nets.h5"
    lin = plugins.get("dynamics", "linear_decay").create(seed=0, N=10, n_frac=0.1, tau=0.01, normalization="none")
    leak = type(lin)({**lin.arrays, "J0": np.zeros((10, 10)), "V": np.zeros((1, 10))}, lin.config, 0)
    store.save_network(path, "leak", leak)
    store.save_network(path, "ei", plugins.get("dynamics", "ei_rate").create(preset="paradoxical"))
    out = simulate_cli(capsys, path, "leak", "--t-max", "0.05", "--dt", "0.0005", "--n-init", "2")
    assert "t = 0..0.05 step 0.0005 s" in out[-4]
    assert out[-3].split() == ["traj", "|x(0)|", "|x(t_max)|", "t(1/e)", "t(0.1)"]
    for row in out[-2:]:
        assert float(row.split()[3]) == pytest.approx(0.01, rel=1e-3)
        assert float(row.split()[4]) == pytest.approx(0.01 * np.log(10), rel=1e-3)
    ei = simulate_cli(capsys, path, "ei", "--t-max", "50", "--dt", "0.5", "--n-init", "2")
    assert "t = 0..50 step 0.5 ms" in ei[-4]
    assert ei[-3].split() == ["traj", "|x(0)|", "|x(t_max)|", "E(t_max)", "[Hz]", "I(t_max)", "[Hz]"]
    assert not any("t(1/e)" in line for line in ei)


def test_the_framework_names_no_model():
    """Issue 13: `grep -rn "n_frac\\|t_1pct\\|decay time" tcnet/` finds nothing."""
    pattern = re.compile(r"n_frac|t_1pct|decay time")
    hits = [f"{p.relative_to(FRAMEWORK)}:{i}" for p in sorted(FRAMEWORK.rglob("*.py"))
            for i, line in enumerate(p.read_text().splitlines(), 1) if pattern.search(line)]
    assert hits == []


def test_a_study_table_carries_its_dynamics_declaration(tmp_path):
    """Table.build takes the labels of the study's dynamics (from the stored runs' plugins)."""
    import concurrent.futures

    from tcnet.study import Study

    study = Study({"dynamics": {"name": "linear_decay", "N": 4, "n_frac": 0.25}, "loss": [{"name": "decay"}],
                   "optimizer": {"name": "adam", "steps": 1}}, grid={"dynamics.N": [4, 8]}, name="tiny")
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        study.run(tmp_path / "tiny.h5", pool, progress=False)
    table = study.table(tmp_path / "tiny.h5")
    assert table.labels is registry().get("dynamics", "linear_decay").labels
    assert default_metrics(table) == ["loss", "summary/t_1pct", "summary/t_5pct"]
    assert label(table, "dynamics.N") == "N"
