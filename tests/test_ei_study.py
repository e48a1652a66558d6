"""The vectorized comparative study of the E/I rules: it must follow the optimizer plugins step for
step, count convergence correctly, and the `tcnet ei-study` command must write its table and
figures (a tiny run; the full study is run by hand, see the issue report)."""
import json

import numpy as np
import pytest

import tcnet
from tcnet.cli import main
from tcnet_plugins.ei import model as ei
from tcnet_plugins.ei import study


@pytest.mark.parametrize("rule", ei.RULES)
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
    W, conv, k, _ = study.learn("cross_homeostatic", np.stack([at_set, down]), p, 1e-3, 20)
    assert conv.tolist() == [True, False] and k.tolist() == [0, -1]
    np.testing.assert_allclose(W, np.stack([at_set, down]), rtol=1e-12)


def test_ei_study_command_writes_table_json_and_figures(tmp_path):
    out = tmp_path / "study"
    code = main(["ei-study", "--n-init", "4", "--steps", "30", "--rules", "exact", "cross_homeostatic",
                 "--out", str(out)])
    assert code == 0
    numbers = json.loads((out / "ei_study.json").read_text())
    assert numbers["settings"]["n_init"] == 4
    for preset in ei.PRESETS:
        for rule in ("exact", "cross_homeostatic"):
            assert 0.0 <= numbers["results"][preset]["rules"][rule]["converged"] <= 1.0
        for fig in (f"ei_trajectories_{preset}.png", f"ei_regions_{preset}.png"):
            assert (out / fig).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| paradoxical | exact |" in (out / "ei_study.md").read_text()
    assert main(["ei-study", "--box", "2", "1", "--out", str(out)]) == 2
    assert main(["ei-study", "--rules", "magic", "--out", str(out)]) == 2
