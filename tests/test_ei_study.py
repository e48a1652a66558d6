"""The vectorized comparative study of the E/I rules: it must follow the optimizer plugins step for
step, count convergence correctly, and the `tcnet ei-study` command must write its table and
figures (a tiny run; the full study is run by hand, see the issue report)."""
import json

import numpy as np
import pytest

import tcnet
from tcnet.cli import main
from tcnet_plugins.ei import model as ei
from tcnet_plugins.ei import rules, study


@pytest.mark.parametrize("rule", rules.RULES)
@pytest.mark.parametrize("preset", list(ei.PRESETS))
def test_vectorized_learning_follows_the_optimizer_plugin(rule, preset):
    steps, lr = 40, 1e-3
    res = tcnet.run({"dynamics": {"name": "ei_rate", "preset": preset}, "loss": [{"name": "homeostatic"}],
                     "optimizer": {"name": rule, "lr": lr, "steps": steps}}, progress=False)
    p = ei.PRESETS[preset]["params"]
    W0 = np.array([ei.PRESETS[preset]["W"]])
    W, _, _, paths = study.learn(rule, W0, p, lr, steps, record=(0,))
    np.testing.assert_allclose(W[0], res.result.x, rtol=1e-10)
    reported = len(res.history.steps)
    np.testing.assert_allclose(paths[0][:reported, 0], [s.extra["E"] for s in res.history.steps], rtol=1e-10)
    if res.result.status == "no_progress":  # weights without a steady state: both stop there
        assert np.all(np.isnan(paths[0][reported:, 0])) and reported < steps + 1


def test_convergence_count_and_steps():
    p = ei.PRESETS["paradoxical"]["params"]
    at_set = np.array([5.0, 15.2 / 14, 10.0, 21.5 / 14])  # published set-point weights
    down = np.array([0.5, 2.0, 1.0, 2.0])  # no Up state: no rule can move it (E = I = 0)
    W, conv, k, _ = study.learn("cross_homeostatic", np.stack([at_set, down]), p, 1e-3, 20, hold=5)
    assert conv.tolist() == [True, False] and k.tolist() == [0, -1]
    np.testing.assert_allclose(W, np.stack([at_set, down]), rtol=1e-12)


@pytest.mark.parametrize("rule", ["cross_homeostatic", "exact"])
def test_study_and_optimizer_share_one_definition_of_convergence(rule):
    """The optimizer stops `hold` steps into the streak; the study reports the streak's first step
    and freezes the row there: same step, same weights."""
    lr, hold = 2e-3, 25
    res = tcnet.run({"dynamics": {"name": "ei_rate"}, "loss": [{"name": "homeostatic"}],
                     "optimizer": {"name": rule, "lr": lr, "steps": 5000, "rtol": 0.01, "hold": hold}}, progress=False)
    assert res.result.status == "converged"
    p = ei.PRESETS["paradoxical"]["params"]
    W, conv, k, _ = study.learn(rule, np.array([ei.PRESETS["paradoxical"]["W"]]), p, lr, 5000, 0.01, hold)
    assert conv[0] and k[0] == res.result.steps - hold + 1
    np.testing.assert_allclose(W[0], res.result.x, rtol=1e-10)
    within = [rules.within(s.extra["E"], s.extra["I"], p, 0.01) for s in res.history.steps]
    assert all(within[k[0]:]) and not within[k[0] - 1]


def solve_up(W, p):
    W_EE, W_EI, W_IE, W_II = W
    A = np.array([[1 - p["g_E"] * W_EE, p["g_E"] * W_EI], [-p["g_I"] * W_IE, 1 + p["g_I"] * W_II]])
    return np.linalg.solve(A, [p["g_E"] * (p["I_ext"] - p["Theta_E"]), -p["g_I"] * p["Theta_I"]])


@pytest.mark.parametrize("rule", rules.RULES)
@pytest.mark.parametrize("preset", list(ei.PRESETS))
def test_error_response_is_the_linearized_step(rule, preset):
    """M e = the rate change (numpy's solve, central differences) of the step the rule takes at rates
    r_set - e from the set-point weights, for small e; the natural scale is the ratio of spectral radii."""
    p, W0 = ei.PRESETS[preset]["params"], ei.PRESETS[preset]["W"]
    W_EI, W_II = ei.set_point_weights(W0[0], W0[2], p)
    W = np.array([W0[0], W_EI, W0[2], W_II])
    M = rules.error_response(rule, p, W0[0], W0[2])
    h = 1e-6
    for e in (np.array([1e-4, 0.0]), np.array([0.0, 1e-4]), np.array([3e-5, -5e-5])):
        dW = rules.rule_update(rule, p["E_set"] - e[0], p["I_set"] - e[1], W, p, 1.0)
        dr = (solve_up(W + h * dW, p) - solve_up(W - h * dW, p)) / (2 * h)
        np.testing.assert_allclose(dr, M @ e, rtol=2e-3, atol=1e-9 * np.abs(M).max())
    rho = lambda r: np.abs(np.linalg.eigvals(rules.error_response(r, p, W0[0], W0[2]))).max()
    np.testing.assert_allclose(rules.natural_scale(rule, p, W0[0], W0[2]), rho("cross_homeostatic") / rho(rule), rtol=1e-12)


def test_ei_study_command_writes_tables_json_and_figures(tmp_path):
    out = tmp_path / "study"
    code = main(["ei-study", "--n-init", "3", "--steps", "30", "--trial-inits", "1", "--trials", "3", "--seeds", "2",
                 "--rules", "exact", "cross_homeostatic", "--hold", "2", "--out", str(out)])
    assert code == 0
    numbers = json.loads((out / "ei_study.json").read_text())
    assert numbers["settings"]["qss"]["n_init"] == 3 and numbers["settings"]["trials"]["steps"] == 3
    for mode in ("qss", "trials"):
        for preset in ei.PRESETS:
            for rule in ("exact", "cross_homeostatic"):
                row = numbers["results"][mode][preset]["rules"][rule]
                assert 0.0 <= row["converged"] <= 1.0
                lr = 3e-4 if mode == "qss" else 5e-4
                W = ei.PRESETS[preset]["W"]
                np.testing.assert_allclose(row["eta"], lr * rules.natural_scale(rule, ei.PRESETS[preset]["params"],
                                                                            W[0], W[2]), rtol=1e-12)
            for kind in ("trajectories", "regions"):
                assert (out / f"ei_{mode}_{kind}_{preset}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [r["seed"] for r in numbers["results"]["published"]] == [0, 1]
    for fig in ("trial_traces", "learning_curves", "paradoxical_response", "phase_plane"):
        assert (out / f"ei_{fig}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = (out / "ei_study.md").read_text()
    assert "| paradoxical | exact |" in text and "### trials" in text and "### published" in text
    assert main(["ei-study", "--box", "2", "1", "--out", str(out)]) == 2
    assert main(["ei-study", "--rules", "magic", "--out", str(out)]) == 2
    assert main(["ei-study", "--mode", "fast", "--out", str(out)]) == 2


def test_ei_study_learning_runs_are_a_study_that_compare_open_and_reruns_see(tmp_path, capsys):
    """The trials-mode and published learning runs are runs of tcnet studies in out/ei_study.h5:
    `tcnet compare` and `tcnet.open` read them, a stored run equals the same spec run by tcnet.run,
    the table's numbers come from the stored runs, and running the study again runs nothing again."""
    from tcnet.store import list_runs, read_run
    from tcnet_plugins.ei.study import TRIAL_BASE, trial_point

    out = tmp_path / "study"
    argv = ["ei-study", "--mode", "trials", "--trial-inits", "2", "--trials", "4", "--seeds", "1", "--rules",
            "cross_homeostatic", "--presets", "paradoxical", "--hold", "2", "--out", str(out)]
    assert main(argv) == 0
    path = out / "ei_study.h5"
    ids = list_runs(path)
    assert len(ids) == 3 and sorted(i.split("-")[1] for i in ids) == ["published", "trials", "trials"]
    f = tcnet.open(path)
    assert set(f.runs["run"]) == set(ids) and set(f.runs["status"]) == {"finished"}
    numbers = json.loads((out / "ei_study.json").read_text())["results"]
    row = numbers["trials"]["paradoxical"]["rules"]["cross_homeostatic"]
    for rid in ids:
        rec = read_run(path, rid)
        if rec.spec["dynamics"]["W"] == list(ei.PRESETS["paradoxical"]["W"]) and "trials" in rid:
            assert rec.final.arrays["W"].tolist() == row["preset_W_final"]
            spec = {**TRIAL_BASE, "dynamics": {"name": "ei_rate", "preset": "paradoxical", "W": rec.spec["dynamics"]["W"],
                                               "seed": rec.spec["dynamics"]["seed"]},
                    "optimizer": {**TRIAL_BASE["optimizer"], **{k.split(".")[1]: v for k, v in trial_point(
                        "paradoxical", "cross_homeostatic", ei.PRESETS["paradoxical"]["W"], row["eta"], 4, 0,
                        0.01, 2).items() if k.startswith("optimizer.")}}}
            direct = tcnet.run(spec, progress=False)
            np.testing.assert_array_equal(direct.final.arrays["W"], rec.final.arrays["W"])
            np.testing.assert_array_equal(direct.history.column("loss"), rec.history["loss"])
    assert main(["compare", str(path), "--csv"]) == 0
    capsys.readouterr()
    mtime = path.stat().st_mtime_ns
    assert main(argv) == 0  # again: every run is in the file
    assert list_runs(path) == ids and path.stat().st_mtime_ns == mtime
