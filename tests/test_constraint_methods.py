"""The generic constraint methods: on the toy against independent numpy computations (the slides'
loop, fsolve of fixed points and stationarity conditions, closed forms), on the E/I rate model
against its KKT conditions and an ODE integration, and their configuration errors."""
import numpy as np
import pytest
import scipy.optimize

import tcnet
from tcnet import ConfigError
from tcnet.optim import Checkpoint
from tcnet_plugins.constraints.toy_gaussian import (
    constrained_optimum, lagrangian_critical_rho, lagrangian_discrete_critical_rho, lagrangian_step_jacobian,
    slides_methods, toy_spec,
)

U, C = np.array([1.0, 1.5]), np.array([[1.0, 0.7], [0.7, 1.0]])
START = np.array([2.0, 1.0])


def grad_f(x):
    d = x - U
    return 2 * np.exp(-d @ C @ d) * (C @ d)


def slides_loop(x, steps, a=0.01, b=0.2):
    """The slides' torch loop in numpy with the analytic gradient."""
    x = np.array(x, dtype=float)
    for _ in range(steps):
        x = x - a * grad_f(x)
        x[1] = x[1] - b * 2 * (x[1] - 3.0)
    return x


def run_toy(method, start=START, **settings):
    return tcnet.run(toy_spec({**slides_methods()[method], **settings}, start=start), progress=False)


def test_alternating_reproduces_the_slides_loop():
    res = run_toy("alternating")
    assert res.result.steps == 1000
    assert np.allclose(res.final.arrays["x"][0], slides_loop(START, 1000), atol=1e-12)
    extra = res.history.steps[-1].extra
    assert set(extra) == {"objective", "violation"}
    x = res.final.arrays["x"][0]
    d = x - U
    assert extra["objective"] == pytest.approx(-np.exp(-d @ C @ d), rel=1e-12)
    assert extra["violation"] == pytest.approx(abs(x[1] - 3.0), rel=1e-12)


def test_alternating_bias_equals_the_fixed_point_of_its_two_updates():
    res = run_toy("alternating", steps=20000, tol=1e-13)
    assert res.result.status == "converged"
    root = scipy.optimize.fsolve(lambda x: slides_loop(x, 1) - x, constrained_optimum()[0], xtol=1e-14)
    x = res.final.arrays["x"][0]
    assert np.allclose(x, root, atol=1e-6)
    bias = np.linalg.norm(x - constrained_optimum()[0])
    assert bias == pytest.approx(np.linalg.norm(root - constrained_optimum()[0]), abs=1e-6)
    assert bias > 5e-3  # the scheme does not reach the constrained optimum


def test_lagrangian_converges_to_the_constrained_optimum_and_its_multiplier():
    res = run_toy("lagrangian")
    assert res.result.status == "converged"
    x_star, lam_star = constrained_optimum()
    assert np.allclose(res.final.arrays["x"][0], x_star, atol=1e-6)
    extra = [s.extra for s in res.history.steps]
    assert len(extra) == res.result.steps + 1
    assert all(set(e) == {"objective", "violation", "multiplier"} for e in extra)
    assert extra[0]["multiplier"] == 0.0 and extra[0]["violation"] == pytest.approx(2.0)
    assert extra[-1]["multiplier"] == pytest.approx(lam_star, abs=1e-6)
    # the multiplier moves by multiplier_lr * g each step
    lam = np.array([e["multiplier"] for e in extra])
    g = np.array([s.x[1] - 3.0 for s in res.history.steps])
    assert np.allclose(np.diff(lam), 0.05 * g[:-1], atol=1e-14)


def test_basic_lagrangian_leaves_the_optimum_and_augmentation_above_the_critical_rho_holds_it():
    x_star, lam_star = constrained_optimum()
    start = x_star + [0.01, 0.01]
    rho_c = lagrangian_critical_rho()
    basic = run_toy("lagrangian", start=start, rho=0.0, multiplier=lam_star, steps=1500, tol=0.0)
    assert np.linalg.norm(basic.final.arrays["x"][0] - x_star) > 0.1
    damped = run_toy("lagrangian", start=start, rho=2 * rho_c, multiplier=lam_star, steps=20000, tol=1e-9)
    assert damped.result.status == "converged"
    assert np.allclose(damped.final.arrays["x"][0], x_star, atol=1e-6)


def test_discrete_critical_rho_separates_runs_that_settle_from_runs_that_drift():
    """At lr = multiplier_lr = 0.05 the small-step threshold rho > 0.2071 is not enough: the step map
    needs rho > 0.2526. Runs from near (x*, lambda*) on either side of it (0.23 passes the small-step
    test) move away from or towards it at the rate the step Jacobian's spectral radius predicts."""
    x_star, lam_star = constrained_optimum()
    rho_c, rho_d = lagrangian_critical_rho(), lagrangian_discrete_critical_rho()
    assert rho_c == pytest.approx(0.2071, abs=1e-4) and rho_d == pytest.approx(0.2526, abs=1e-4)
    for rho in (0.23, 0.30):
        method = {"name": "lagrangian", "constraint": "constraint", "steps": 2000, "lr": 0.05,
                  "multiplier_lr": 0.05, "rho": rho, "multiplier": lam_star, "tol": 0.0}
        res = tcnet.run(toy_spec(method, start=x_star + 1e-3), progress=False)
        dist = np.array([np.hypot(np.linalg.norm(s.x - x_star), s.extra["multiplier"] - lam_star)
                         for s in res.history.steps])
        rate = np.log(dist[1700:].max() / dist[300:600].max()) / 1400  # envelope of the oscillation
        radius = np.abs(np.linalg.eigvals(lagrangian_step_jacobian(rho))).max()
        assert rate == pytest.approx(np.log(radius), rel=0.1)
        assert (rate > 0) == (rho < rho_d)


def test_lagrangian_resume_is_exact():
    spec = toy_spec({**slides_methods()["lagrangian"], "steps": 300, "tol": 0.0})
    full = tcnet.run(spec, progress=False)
    cut = full.history.steps[120]
    resumed = tcnet.run(spec, progress=False, resume=Checkpoint.at(cut))
    assert np.array_equal(resumed.final.arrays["x"], full.final.arrays["x"])
    assert [s.extra["multiplier"] for s in resumed.history.steps] == \
        [s.extra["multiplier"] for s in full.history.steps[121:]]


def test_penalty_ends_at_the_minimizer_of_the_final_penalized_objective():
    res = run_toy("penalty")
    mu = np.array([s.extra["mu"] for s in res.history.steps])
    t = np.arange(len(mu))
    assert np.array_equal(mu, np.minimum(2.0 ** (t // 100), 50.0))
    x_mu = scipy.optimize.fsolve(lambda x: grad_f(x) + np.array([0.0, 2 * 50.0 * (x[1] - 3.0)]),
                                 constrained_optimum()[0], xtol=1e-14)
    x = res.final.arrays["x"][0]
    assert np.allclose(x, x_mu, atol=1e-6)
    # its multiplier estimate 2 mu g approaches lambda*, and the bias is g = lambda_est / (2 mu)
    _, lam_star = constrained_optimum()
    assert res.history.steps[-1].extra["multiplier"] == pytest.approx(2 * 50.0 * (x[1] - 3.0), rel=1e-9)
    assert res.history.steps[-1].extra["multiplier"] == pytest.approx(lam_star, rel=0.05)
    assert 1e-3 < abs(x[1] - 3.0) < 1e-2
    assert x[1] - 3.0 == pytest.approx(lam_star / (2 * 50.0), rel=0.05)  # g ~ +lambda*/(2 mu), sign included


def test_batched_copies_equal_separate_runs():
    starts = np.array([[2.0, 1.0], [-1.0, 5.0], [0.5, 0.0]])
    for method in ("alternating", "lagrangian", "penalty"):
        together = run_toy(method, start=starts, steps=150, tol=0.0).final.arrays["x"]
        for k, s in enumerate(starts):
            alone = run_toy(method, start=s, steps=150, tol=0.0).final.arrays["x"][0]
            assert np.allclose(together[k], alone, rtol=0, atol=1e-13), method


def test_generic_equality_loss_matches_the_toy_constraint():
    spec = toy_spec({**slides_methods()["lagrangian"], "steps": 50})
    spec["loss"][1] = {"name": "equality", "label": "constraint", "quantity": "x", "index": [1], "target": 3.0}
    generic = tcnet.run(spec, progress=False)
    toy = run_toy("lagrangian", steps=50)
    assert np.allclose(generic.final.arrays["x"], toy.final.arrays["x"], rtol=0, atol=1e-14)


def test_lagrangian_enforces_a_firing_rate_target_on_the_ei_rate_model():
    """The same optimizer on another plugin's dynamics: keep E at a target rate while the homeostatic
    loss pulls (E, I) toward (E_set, I_set) = (5, 14). With four weights both E = 6 and I = 14 are
    reachable, so KKT gives I = I_set and lambda* = -(E - E_set) = -1 (grad f = (E - E_set) grad E)."""
    spec = {"dynamics": {"name": "ei_rate"},
            "loss": [{"name": "homeostatic", "label": "homeostatic"},
                     {"name": "equality", "label": "rate_target", "quantity": "E", "target": 6.0}],
            "optimizer": {"name": "lagrangian", "constraint": "rate_target", "steps": 6000, "lr": 0.003,
                          "multiplier_lr": 0.01, "rho": 0.5, "tol": 1e-9}}
    res = tcnet.run(spec, progress=False)
    assert res.result.status == "converged"
    summary = res.final.summary()
    assert summary["E_up"] == pytest.approx(6.0, abs=1e-6)
    assert summary["I_up"] == pytest.approx(14.0, abs=1e-6)
    assert res.history.steps[-1].extra["multiplier"] == pytest.approx(-1.0, abs=1e-6)
    assert summary["stable"] == 1.0
    # the rate ODE itself, integrated from off the fixed point, settles at the constrained rates
    rates = res.final.simulate(np.array([4.0, 10.0]), np.linspace(0.0, 1000.0, 11))[-1]
    assert np.allclose(rates, [6.0, 14.0], rtol=1e-3)


@pytest.mark.parametrize("method,settings,message", [
    ("alternating", {"lr": 0.0}, r"alternating: lr must be in \(0, inf\]"),
    ("alternating", {"lr": -0.01}, r"alternating: lr must be in \(0, inf\]"),
    ("alternating", {"constraint_lr": 0.0}, r"alternating: constraint_lr must be in \(0, inf\]"),
    ("lagrangian", {"multiplier_lr": -1.0}, r"lagrangian: multiplier_lr must be in \(0, inf\]"),
    ("penalty", {"lr": 0}, r"penalty: lr must be in \(0, inf\]"),
    ("penalty", {"mu_max": 0.5}, r"penalty: mu_max must be in \[1.0, inf\]"),
    ("alternating", {"subset": ["y"]}, r"subset entry 'y' names no trainable parameter of toy_gaussian; trainable: x"),
    ("alternating", {"subset": ["x[:, 2]"]}, r"subset entry 'x\[:, 2\]' is out of range for x of shape \(1, 2\)"),
    ("alternating", {"subset": ["x[a]"]}, r"index part 'a' must be an integer or a slice"),
    ("alternating", {"subset": []}, r"subset must be a non-empty list"),
    ("lagrangian", {"constraint": "rate"}, r"lagrangian: constraint 'rate' is not a term of the objective; terms are objective, constraint"),
    ("penalty", {"constraint": None}, r"penalty: constraint must be the label of the objective's constraint term"),
    ("lagrangian", {"unknown": 1}, r"lagrangian: unknown setting 'unknown'"),
])
def test_invalid_settings_are_config_errors(method, settings, message):
    with pytest.raises(ConfigError, match=message):
        run_toy(method, **settings)


def test_lagrangian_needs_a_signed_residual_and_an_objective_besides_the_constraint():
    spec = toy_spec(slides_methods()["lagrangian"])
    spec["loss"] = [{"name": "toy_constraint", "label": "objective"}, {"name": "toy_objective", "label": "constraint"}]
    with pytest.raises(ConfigError, match="constraint term 'constraint' \\(loss 'toy_objective'\\) has no signed residual"):
        tcnet.run(spec, progress=False)
    spec["loss"] = [{"name": "toy_constraint", "label": "constraint"}]
    with pytest.raises(ConfigError, match="needs at least one term besides the constraint"):
        tcnet.run(spec, progress=False)


def test_equality_loss_names_unknown_quantities():
    spec = toy_spec(slides_methods()["penalty"])
    spec["loss"][1] = {"name": "equality", "label": "constraint", "quantity": "rate", "target": 1.0}
    with pytest.raises(ConfigError, match="quantity 'rate' is not a quantity of the toy_gaussian state; available: f, q, x"):
        tcnet.run(spec, progress=False)


def test_basin_map_command_writes_a_png_and_prints_fractions(tmp_path, capsys):
    from tcnet.cli import main

    out = tmp_path / "basin.png"
    code = main(["basin-map", "--out", str(out), "--grid", "4", "--x1", "-0.5", "0.5", "--x2", "2.5", "3.5",
                 "--steps", "800", "--tol", "0.05", "--methods", "alternating", "lagrangian", "penalty"])
    text = capsys.readouterr().out
    assert code == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # starts within 0.6 of the optimum reach it (within 0.05) with every method in 800 steps
    for method in ("alternating", "lagrangian", "penalty"):
        assert f"{method}" in text and "100.0%" in text.split(method)[1].splitlines()[0]
    assert main(["basin-map", "--out", str(tmp_path / "other.png"), "--grid", "1"]) == 2
    assert "tcnet basin-map: grid must be an integer in [2, inf], got 1" in capsys.readouterr().err


def test_basin_map_out_is_a_figure_file_or_a_directory(tmp_path, capsys):
    """--out: a .png/.pdf/.svg file or an existing directory (which receives basin_map.png), never
    replaced without --force; the path printed is the path written. Before: `--out b.txt` failed in
    matplotlib, `--out DIR` wrote DIR.png and printed 'wrote DIR', an existing file was replaced."""
    from tcnet.cli import main

    small = ["--grid", "3", "--steps", "5", "--methods", "penalty"]
    assert main(["basin-map", "--out", str(tmp_path / "b.txt"), *small]) == 2
    err = capsys.readouterr().err
    assert err == (f"tcnet basin-map: --out must end in .png or .pdf or .svg (or have no extension, which adds "
                   f".png), got {str(tmp_path / 'b.txt')!r}\n")
    folder = tmp_path / "figures"
    folder.mkdir()
    assert main(["basin-map", "--out", str(folder), *small]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == f"wrote {folder / 'basin_map.png'}"
    assert (folder / "basin_map.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["figures"]  # no figures.png, no temporary left
    assert main(["basin-map", "--out", str(tmp_path / "missing") + "/", *small]) == 2
    assert "does not exist" in capsys.readouterr().err
    pdf = tmp_path / "b.pdf"
    pdf.write_bytes(b"mine")
    assert main(["basin-map", "--out", str(pdf), *small]) == 2
    assert "exists already; refusing to replace it" in capsys.readouterr().err
    assert pdf.read_bytes() == b"mine"
    assert main(["basin-map", "--out", str(pdf), "--force", *small]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == f"wrote {pdf}"
    assert pdf.read_bytes()[:5] == b"%PDF-"


def test_history_in_the_store_holds_objective_violation_and_multiplier(tmp_path):
    from tcnet.store import RunWriter, read_run

    path = tmp_path / "runs.h5"
    writer = RunWriter(path, flush_steps=100)
    res = tcnet.run(toy_spec(slides_methods()["lagrangian"]), recorders=[writer], progress=False)
    record = read_run(path, writer.run_id)
    h = record.history
    assert len(h["extra/multiplier"]) == res.result.steps + 1
    # at the start x = (2, 1): g = -2, f = -exp(-(x-u)^T C (x-u)) = -exp(-0.55), lambda = 0
    assert h["extra/violation"][0] == pytest.approx(2.0, rel=1e-12)
    assert h["extra/objective"][0] == pytest.approx(-np.exp(-0.55), rel=1e-12)
    assert h["extra/multiplier"][0] == 0.0
    assert h["extra/multiplier"][-1] == pytest.approx(constrained_optimum()[1], abs=1e-6)
    assert np.allclose(record.final.arrays["x"][0], constrained_optimum()[0], atol=1e-6)
    assert np.allclose(record.checkpoint.opt_state["multiplier"], constrained_optimum()[1], atol=1e-6)


@pytest.mark.parametrize("config,message", [
    ({}, "equality: quantity must be given: the name of a quantity of the dynamics' state"),
    ({"quantity": None}, "equality: quantity must be the name of a quantity of the dynamics' state"),
    ({"quantity": "x", "index": []}, "equality: index must be an integer or a non-empty list of integers"),
    ({"quantity": "x", "index": [0.5]}, "equality: index must be an integer or a list of integers"),
    ({"quantity": "x", "target": "three"}, "equality: target must be a number or a list of numbers"),
    ({"quantity": "x", "target": float("inf")}, "equality: target must be a number or a list of numbers"),
    ({"quantity": "x", "target": [[1.0]]}, "equality: target must be a number or a list of numbers"),
    ({"quantity": "x", "index": [5]}, r"equality: index \[5\] is out of range for x with 2 entries"),
    ({"quantity": "x", "index": [0, 1], "target": [1.0, 2.0, 3.0]},
     "equality: target has 3 entries but the selection of x has 2"),
])
def test_equality_loss_config_errors(config, message):
    spec = toy_spec(slides_methods()["penalty"])
    spec["loss"][1] = {"name": "equality", "label": "constraint", **config}
    with pytest.raises(ConfigError, match=message):
        tcnet.run(spec, progress=False)
