"""The K-population circuit figures (tcnet_plugins.ei.circuit_figures) draw what they say, checked
against independent computations: the learning figure's lines are the run's steady rates and end
at the steady state the circuit's protocol reaches from rest with the final weights; the response
heat maps are central differences of the re-solved steady state; the marked entries are the
paradoxical and reversed ones by the entries' signs; and a figure file is written whole."""
import matplotlib
import numpy as np
import pytest

import tcnet
from tcnet import steady as ss
from tcnet.store.errors import StoreError
from tcnet_plugins.ei import model as ei
from tcnet_plugins.ei.circuit import EICircuit
from tcnet_plugins.ei.circuit_figures import (draw_learning, draw_responses, learning_rates, marks, plot_learning,
                                              plot_responses)
from tcnet_plugins.ei.presets import PRESETS

POPULATIONS = ["E", "PV", "SST", "VIP"]
LOWERED = (0.95 * np.array(PRESETS["del_molino_high"]["input"])).tolist()


@pytest.fixture(scope="module")
def run():
    """A short generic-rule run (QSS) of the high-baseline circuit with its inputs lowered by 5%."""
    return tcnet.run({"dynamics": {"name": "ei_circuit", "preset": "del_molino_high", "input": LOWERED},
                      "loss": [{"name": "set_points"}],
                      "optimizer": {"name": "loss_rule", "lr": 1e-4, "steps": 30}}, progress=False)


def test_learning_figure_draws_the_runs_rates_ending_at_the_final_steady_state(run, tmp_path):
    rates = learning_rates(run.history.steps, POPULATIONS)
    set_points = PRESETS["del_molino_high"]["set_points"]
    fig = draw_learning(rates, POPULATIONS, set_points)
    ax = fig.axes[0]
    solid = [line for line in ax.lines if line.get_linestyle() == "-"]
    dashed = [line for line in ax.lines if line.get_linestyle() == "--" and len(line.get_ydata())]
    assert [line.get_label() for line in solid] == POPULATIONS
    # the final steady state, re-decided from rest by the protocol with the final weights (not followed)
    final = EICircuit.create(preset="del_molino_high", input=LOWERED, W=run.final.arrays["W"].tolist())
    end = ss.reach(final.field, (final.arrays["W"],), final.protocol)
    np.testing.assert_allclose([line.get_ydata()[-1] for line in solid], end, rtol=1e-9)
    start = EICircuit.create(preset="del_molino_high", input=LOWERED)
    np.testing.assert_allclose([line.get_ydata()[0] for line in solid],
                               ss.reach(start.field, (start.arrays["W"],), start.protocol), rtol=1e-9)
    assert all(len(line.get_xdata()) == len(run.history.steps) for line in solid)
    # each set point dashed, in its population's colour
    assert [line.get_ydata()[0] for line in dashed] == set_points
    assert [line.get_color() for line in dashed] == [line.get_color() for line in solid]
    matplotlib.pyplot.close(fig)
    assert np.all(np.abs(rates[-1] - set_points) < np.abs(rates[0] - set_points))  # learning moves toward them


def central_response(net, h=1e-4):
    """dr*/dh by central differences: Newton re-solves the steady state with input +-h to each population."""
    W, r = net.arrays["W"], net.state().rates
    columns = []
    for j in range(net.K):
        u = np.zeros(net.K)
        u[j] = h
        (up, ok_up), (down, ok_down) = (ss.newton(net.field, (W,), r, s * u) for s in (1, -1))
        assert ok_up and ok_down
        columns.append((up - down) / (2 * h))
    return np.column_stack(columns)


def boxed(ax, gid):
    """The (row, column) cells the axes marks with boxes of this gid."""
    return sorted((round(p.get_y() + 0.45), round(p.get_x() + 0.45)) for p in ax.patches if p.get_gid() == gid)


def test_response_figure_draws_central_differences_and_marks_the_reversal(run):
    low = EICircuit.create(preset="del_molino_low")
    before = EICircuit.create(preset="del_molino_high", input=LOWERED)
    panels = [("low baseline", low), ("before", before), ("after", run.final)]
    fig = draw_responses(panels, POPULATIONS)
    heat_maps = [ax for ax in fig.axes if ax.images]
    assert len(heat_maps) == 3
    for ax, (_, net) in zip(heat_maps, panels):
        drawn = np.asarray(ax.images[0].get_array())
        expected = central_response(net)
        np.testing.assert_allclose(drawn, expected, rtol=1e-6, atol=1e-8)
        sign, W = net.sign, net.arrays["W"]
        paradoxical = [(k, k) for k in range(4) if sign[k] < 0 and expected[k, k] < 0]
        reversed_ = [(k, j) for k in range(4) for j in range(4)
                     if k != j and W[k, j] > 0 and expected[k, j] * sign[j] < 0]
        assert boxed(ax, "paradoxical") == paradoxical
        assert boxed(ax, "reversed") == reversed_
    # the del Molino reversal: VIP input lowers SST at low baseline, raises it (marked) at high baseline
    low_map, before_map = (np.asarray(ax.images[0].get_array()) for ax in heat_maps[:2])
    assert low_map[2, 3] < 0 < before_map[2, 3]
    assert (2, 3) not in boxed(heat_maps[0], "reversed") and (2, 3) in boxed(heat_maps[1], "reversed")
    matplotlib.pyplot.close(fig)


@pytest.mark.parametrize("preset", ["paradoxical", "non_paradoxical"])
def test_marks_of_the_two_population_circuits_follow_the_closed_form(preset):
    """I's own entry is marked exactly where the closed-form paradoxical coefficient of ei_rate
    (-dI*/dh_I) is positive; E and I each move the other with their connection's sign (E raises
    I, I lowers E), so nothing is reversed."""
    net = EICircuit.create(preset=preset)
    response = net.state().response
    paradoxical, reversed_ = marks(response, net.sign, net.arrays["W"])
    coefficient = float(ei.paradoxical_coefficient(net.arrays["W"].ravel(), ei.PRESETS[preset]["params"]))
    np.testing.assert_allclose(-response[1, 1], coefficient, rtol=1e-9)
    np.testing.assert_array_equal(paradoxical, [[False, False], [False, coefficient > 0]])
    assert (preset == "paradoxical") == (coefficient > 0)
    assert response[1, 0] > 0 > response[0, 1] and not reversed_.any()


def test_figures_are_written_whole_and_not_over_an_existing_file(run, tmp_path):
    rates = learning_rates(run.history.steps, POPULATIONS)
    path = plot_learning(rates, POPULATIONS, [30, 50, 30, 20], tmp_path / "learning.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    written = path.read_bytes()
    with pytest.raises(StoreError, match="exists already"):
        plot_learning(rates, POPULATIONS, [30, 50, 30, 20], path, force=False)
    assert path.read_bytes() == written
    responses = plot_responses([("after", run.final)], POPULATIONS, tmp_path / "responses.png")
    assert responses.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["learning.png", "responses.png"]  # no temporaries left
