"""plot-study figures say what is swept: legends name the setting, and the trade-off of a swept
loss weight is one line per value of the other swept settings (it zig-zagged across them)."""
import numpy as np
import pytest

import tcnet.plot
from tcnet.study.table import Table

KEYS = ["dynamics.n_frac", "loss.smoothness.weight"]
METRICS = ["loss", "terms/decay", "terms/smoothness"]


def table():
    rows = []
    for frac in (0.1, 0.2):
        for w in (0.001, 0.01, 0.1):
            row = {"dynamics.n_frac": frac, "loss.smoothness.weight": w, "n": 2, "finished": 2, "failed": 0}
            for m, v in zip(METRICS, (1 + w + frac, 1 + w / frac, frac / w)):
                row[f"{m}:mean"], row[f"{m}:std"] = v, 0.1 * v
            rows.append(row)
    return Table(KEYS, METRICS, rows)


@pytest.fixture
def figures(monkeypatch):
    drawn = []
    monkeypatch.setattr(tcnet.plot, "save_figure", lambda fig, path, force=False: drawn.append(fig) or path)
    return drawn


def test_tradeoff_draws_one_line_per_value_of_the_other_setting(figures, tmp_path):
    tcnet.plot.study_tradeoff(table(), tmp_path / "t.png", "loss.smoothness.weight")
    ax, = figures[0].axes
    legend = ax.get_legend()
    assert legend.get_title().get_text() == "n_frac"
    assert [t.get_text() for t in legend.get_texts()] == ["n_frac = 0.1", "n_frac = 0.2"]
    lines = [c.lines[0] for c in ax.containers]  # each errorbar's data line
    assert len(lines) == 2
    for line, frac in zip(lines, (0.1, 0.2)):  # each line: its own n_frac, weights in order
        assert list(line.get_ydata()) == pytest.approx([frac / w for w in (0.001, 0.01, 0.1)])
    assert ax.get_title() == "trade-off as the smoothness weight varies (point labels)"


def test_lines_name_the_swept_setting_in_the_legend(figures, tmp_path):
    tcnet.plot.study_lines(table(), tmp_path / "l.png", x="dynamics.n_frac", metrics=["loss"])
    legend = figures[0].axes[0].get_legend()
    assert legend.get_title().get_text() == "smoothness weight"
    assert [t.get_text() for t in legend.get_texts()] == [f"smoothness weight = {w:g}" for w in (0.001, 0.01, 0.1)]


def test_the_demo_learning_curve_marks_and_explains_its_spikes(monkeypatch, tmp_path):
    """The spikes of the demo's curve are steps where Adam crossed into instability: marked with x
    at exactly those steps, and the caption says why."""
    from tcnet_plugins.preparatory import figures

    drawn = []
    monkeypatch.setattr(figures, "save_figure", lambda fig, path, force=False: drawn.append(fig) or path)
    step, stage = np.arange(6), np.array([0, 0, 0, 1, 1, 1])
    loss, unstable = np.array([3.0, 1.5e6, 2.0, 1.0, 0.7, 0.6]), np.array([0, 1, 0, 0, 0, 0.0])
    figures.learning_curve({"demo": (step, stage, loss, unstable)}, tmp_path / "lc.png")
    ax, = drawn[0].axes
    marks = [line for line in ax.get_lines() if line.get_marker() == "x"]
    assert [list(m.get_xdata()) for m in marks] == [[1]] and [list(m.get_ydata()) for m in marks] == [[1.5e6]]
    assert " ".join(ax.get_xlabel().split()).endswith(" ".join(figures.UNSTABLE_CAPTION.split()))
