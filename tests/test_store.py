"""The HDF5 store: layout as documented, round trips, statuses, resume, bad files, writer lock."""
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.optimize

import tcnet
from tcnet import store
from tcnet.plugins import Registry
from tcnet.resume import resume
from tcnet.store import FileBusyError, RunWriter, StoreError, hdf5, trees


TESTS = Path(__file__).parent
PLUGIN_FILES = [TESTS / "plugins_for_tests" / "store_linear.py", TESTS / "quadratic_plugin.py"]
PLUGINS = Registry(files=PLUGIN_FILES)
MU = 1.1  # strong convexity of store_bowl: d2/dJ2 [(J-c)^2 + 0.1 sin 3J] = 2 - 0.9 sin 3J >= 1.1


def spec(optimizer, *, seed=3, N=3, delay=0.0, c=0.3):
    return {"dynamics": {"name": "store_linear", "seed": seed, "N": N},
            "loss": [{"name": "store_bowl", "c": c, "delay": delay}], "optimizer": optimizer}


def go(spec_, path, **writer):
    return tcnet.run(spec_, recorders=[RunWriter(path, **writer)], progress=False, plugins=PLUGINS)


def bowl_value(J, c=0.3):
    """store_bowl evaluated directly in numpy (not through the loss class)."""
    return float(np.sum((J - c) ** 2) + 0.1 * np.sum(np.sin(3 * J)))


def bowl_minimum(n_entries, c=0.3):
    """Minimum of the separable bowl: each entry solves 2(j - c) + 0.3 cos(3j) = 0 (one root,
    the function being strictly convex; the derivative is < 0 at c-1 and > 0 at c+1)."""
    j = scipy.optimize.brentq(lambda j: 2 * (j - c) + 0.3 * np.cos(3 * j), c - 1, c + 1, xtol=1e-15)
    return n_entries * ((j - c) ** 2 + 0.1 * np.sin(3 * j))


def one_line(err, path):
    msg = str(err.value)
    assert "\n" not in msg and str(path) in msg
    return msg


class Raiser:
    """A recorder raising `error` when it sees step `at` (after the RunWriter has recorded it)."""

    def __init__(self, at, error):
        self.at, self.error = at, error

    def start(self, spec, dynamics):
        pass

    def step(self, step):
        if step.step == self.at:
            raise self.error

    def finish(self, result, final):
        pass


# --- the documented layout ---------------------------------------------------------------------

def test_format_document(tmp_path):
    """Read a file with raw h5py exactly as docs/FORMAT.md describes it."""
    path = tmp_path / "doc.h5"
    net = PLUGINS.get("dynamics", "store_linear").create(seed=4, N=3)
    store.save_network(path, "net", net)
    s = spec({"name": "store_probe_gd", "steps": 6, "lr": 0.05})
    r = go(s, path, flush_steps=4)
    def text(obj, key):  # a string: fixed-length UTF-8 (format_version 2 on), read by h5py as bytes
        string = h5py.check_string_dtype(obj.attrs.get_id(key).dtype)
        assert string.encoding == "utf-8" and string.length is not None
        return obj.attrs[key].decode()

    with h5py.File(path, "r") as f:
        assert text(f, "format") == "tcnet" and f.attrs["format_version"] == 4
        assert f.attrs["format_version"].dtype == np.int64 and text(f, "tcnet_version") == tcnet.__version__
        assert f.id.get_create_plist().get_version()[0] == 2  # superblock of HDF5 1.8: checksummed
        g = f["networks/net"]
        assert text(g, "dynamics") == "store_linear" and json.loads(text(g, "config")) == {"N": 3, "tau": 1.0}
        assert g.attrs["seed"] == 4 and g.attrs["seed"].dtype == np.int64
        assert list(g) == ["J", "w"]  # creation order = the Dynamics' order
        for k in g:
            assert g[k].dtype == np.float64 and np.array_equal(g[k][()], net.arrays[k])
        assert list(f["runs"]) == ["run-0001"]
        run = f["runs/run-0001"]
        assert json.loads(text(run, "config")) == tcnet.RunSpec.from_dict(s).resolve(PLUGINS).as_dict()  # resolved
        assert text(run, "status") == "finished" and text(run, "message") == "done"
        assert text(run, "optimizer_status") == "max_steps" and run.attrs["evaluations"] == 7
        assert run.attrs["evaluations"].dtype == np.int64
        assert text(run, "writer").rsplit(":", 1)[1].isdigit()
        for k in ("tcnet_version", "started", "ended"):
            assert text(run, k)
        assert "resumed_at" not in run.attrs
        for part, dyn in (("initial", r.initial), ("final", r.final)):
            p = run[f"params/{part}"]
            assert text(p, "dynamics") == "store_linear" and p.attrs["seed"] == 3
            assert {k: p[k][()] for k in p}.keys() == dyn.arrays.keys()
            assert all(np.array_equal(p[k][()], dyn.arrays[k]) for k in p)
        h = run["history"]
        columns = {"step": np.int64, "stage": np.int64, "loss": np.float64, "grad_norm": np.float64,
                   "wall_time": np.float64, "terms/store_bowl": np.float64, "extra/t_half": np.float64}
        assert set(h) == {"step", "stage", "loss", "grad_norm", "wall_time", "terms", "extra"}
        for name, dtype in columns.items():
            ds = h[name]
            assert ds.dtype == dtype and ds.shape == (7,) and ds.maxshape == (None,) and ds.chunks == (1024,)
        assert np.array_equal(h["step"][()], np.arange(7)) and np.all(h["stage"][()] == 0)
        assert np.array_equal(h["loss"][()], r.history.column("loss"))
        assert np.array_equal(h["terms/store_bowl"][()], r.history.column("loss"))  # weight 1
        assert np.all(np.isnan(h["extra/t_half"][:2])) and np.array_equal(h["extra/t_half"][2:], np.arange(2, 7) / 2)
        assert run.attrs["rows"] == 7 and run.attrs["rows"].dtype == np.int64
        # two flushes (4 steps, then 3 at the end) went to slots 0 and 1; slot 1 is committed
        assert run.attrs["checkpoint"] == 1 and run.attrs["checkpoint"].dtype == np.int64
        assert sorted(run["checkpoint"]) == ["0", "1"] and run["checkpoint/0"].attrs["step"] == 3
        c = run["checkpoint/1"]
        assert c.attrs["step"] == 6 and c.attrs["step"].dtype == np.int64
        assert c.attrs["elapsed"] == h["wall_time"][-1]
        assert c["x"].dtype == np.float64 and np.array_equal(c["x"][()], r.final.vector())
        st = c["state"]
        kinds = {k: text(st[k], "kind") for k in st if isinstance(st[k], h5py.Dataset)}
        assert kinds == {"stage": "int", "evaluations": "int", "t": "int", "rule": "str", "nothing": "none",
                         "pair": "list", "flag": "bool", "scale": "float"}
        assert st["t"][()] == 6 and st["rule"].asstr()[()] == "gd" and st["nothing"].shape is None
        assert np.array_equal(st["pair"][()], [1.0, 2.0]) and st["flag"][()] and st["scale"][()] == 0.5
        assert isinstance(st["moments"], h5py.Group) and text(st["moments/g"], "kind") == "array"
        # checksums: every array chunked with fletcher32, every scalar inside its (checksummed) header
        datasets = []
        f.visititems(lambda name, obj: datasets.append(obj) if isinstance(obj, h5py.Dataset) else None)
        for ds in datasets:
            layout = ds.id.get_create_plist().get_layout()
            if ds.shape is None:
                continue  # h5py.Empty: no data
            assert (ds.chunks is not None and ds.fletcher32) if ds.ndim else layout == h5py.h5d.COMPACT, ds.name
        # digests: an array written whole has BLAKE2b-64 of its bytes; a history column, per checkpoint
        # slot, the sum mod 2**64 of the keyed BLAKE2b-64 of each block of 1024 committed rows
        def blake(data, key=b""):
            return int.from_bytes(hashlib.blake2b(data, digest_size=8, key=key).digest(), "little")

        whole = [ds for ds in datasets if ds.ndim and ds.parent.name != h.name and ds.parent.parent.name != h.name]
        assert len(whole) == 12  # J, w of the saved network, params/initial, params/final; x, pair, g of both slots
        for ds in whole:
            assert ds.attrs["digest"].dtype == np.uint64 and ds.attrs["digest"] == blake(ds[()].astype(ds.dtype.newbyteorder("<")).tobytes()), ds.name
        for name in columns:
            digests = h[name].attrs["digests"]
            assert digests.dtype == np.uint64 and digests.shape == (2,)
            rows = h[name][:7].astype(h[name].dtype.newbyteorder("<"))
            assert digests[1] == blake(rows.tobytes(), key=(0).to_bytes(8, "little"))  # one block: rows 0-6
            assert digests[0] == blake(rows[:4].tobytes(), key=(0).to_bytes(8, "little"))  # committed before
    assert not (tmp_path / "doc.h5.lock").exists()  # the writer removes its lock file when done


# --- round trips -------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(PLUGINS.entries["dynamics"]))
def test_network_round_trip(tmp_path, name):
    """Every registered dynamics (built-in plugins present now, and the test plugins): saved and
    loaded back, the arrays, config and seed are identical, and so are simulated trajectories."""
    net = PLUGINS.get("dynamics", name).create()
    path = tmp_path / "nets.h5"
    store.save_network(path, "n", net)
    back = store.load_network(path, "n", plugins=PLUGINS)
    assert type(back) is type(net) and back.config == net.config and back.seed == net.seed
    assert list(back.arrays) == list(net.arrays)
    for k in net.arrays:
        assert back.arrays[k].dtype == net.arrays[k].dtype and np.array_equal(back.arrays[k], net.arrays[k])
    try:
        x0 = net.sample_initial(3, seed=1)
    except NotImplementedError:
        return
    t = np.linspace(0.0, 2.0, 5)
    assert np.array_equal(back.sample_initial(3, seed=1), x0)
    assert np.array_equal(back.simulate(x0, t), net.simulate(x0, t))


def test_run_history_and_networks_round_trip(tmp_path):
    path = tmp_path / "runs.h5"
    r = go(spec({"name": "staged", "stages": [{"name": "adam", "steps": 8, "lr": 0.05}, {"name": "lbfgs"}]}),
           path, flush_steps=3)
    rec = store.read_run(path, "run-0001", plugins=PLUGINS)
    assert rec.status == "finished" and rec.attrs["optimizer_status"] == "converged"
    for key in ("step", "stage", "loss", "grad_norm", "wall_time", "terms/store_bowl"):
        assert np.array_equal(rec.history[key], r.history.column(key)), key
    assert np.array_equal(rec.history["stage"][:9], np.zeros(9)) and np.all(rec.history["stage"][9:] == 1)
    assert np.array_equal(rec.final.arrays["J"], r.final.arrays["J"])
    assert np.array_equal(rec.initial.arrays["J"], r.initial.arrays["J"])
    assert rec.history["loss"][-1] == pytest.approx(bowl_value(rec.final.arrays["J"]), rel=1e-14)
    assert rec.checkpoint.step == rec.history["step"][-1] and np.array_equal(rec.checkpoint.x, r.result.x)
    # a run's networks addressed by name
    assert np.array_equal(store.load_network(path, "run-0001", plugins=PLUGINS).arrays["J"], r.final.arrays["J"])
    assert np.array_equal(store.load_network(path, "run-0001/initial", plugins=PLUGINS).arrays["J"],
                          r.initial.arrays["J"])
    assert np.array_equal(store.load_network(path, "run-0001/checkpoint", plugins=PLUGINS).vector(), r.result.x)


def test_whole_column_write_equals_step_by_step(tmp_path):
    """RunWriter.record (a whole run: whole columns and the last checkpoint, as the study's driver
    writes a worker's run) stores exactly what the steps written one by one store; an error given
    as a message is recorded as given."""
    from tcnet.optim import Checkpoint
    from tcnet.spec import RunSpec
    path = tmp_path / "runs.h5"
    s = spec({"name": "store_probe_gd", "steps": 6, "lr": 0.1})  # an extra key from step 2 on
    r = go(s, path, flush_steps=2)
    steps = r.history.steps
    RunWriter(path, "whole").record(RunSpec.from_dict(s), r.initial, store.history_columns(steps),
                                    Checkpoint.at(steps[-1]), result=r.result, final=r.final)
    one, whole = (store.read_run(path, rid, plugins=PLUGINS) for rid in ("run-0001", "whole"))
    assert whole.status == one.status == "finished" and list(whole.history) == list(one.history)
    for key, column in one.history.items():
        np.testing.assert_array_equal(whole.history[key], column, err_msg=key)
    assert np.isnan(whole.history["extra/t_half"][:2]).all() and whole.history["extra/t_half"][2] == 1.0
    assert whole.checkpoint.step == one.checkpoint.step == 6 and whole.checkpoint.evaluations == one.checkpoint.evaluations
    np.testing.assert_array_equal(whole.checkpoint.x, one.checkpoint.x)
    assert whole.checkpoint.opt_state.keys() == one.checkpoint.opt_state.keys()
    np.testing.assert_array_equal(whole.checkpoint.opt_state["moments"]["g"], one.checkpoint.opt_state["moments"]["g"])
    np.testing.assert_array_equal(whole.final.arrays["J"], one.final.arrays["J"])

    RunWriter(path, "failed").record(RunSpec.from_dict(s), r.initial, store.history_columns(steps[:3]),
                                     Checkpoint.at(steps[2]), error="LinAlgError: the worker's matrix is singular")
    rec = store.read_run(path, "failed", plugins=PLUGINS)
    assert rec.status == "failed" and rec.message == "LinAlgError: the worker's matrix is singular"
    assert rec.steps == 3 and rec.checkpoint.step == 2
    with pytest.raises(StoreError, match="history columns must include step, stage, loss, grad_norm, wall_time"):
        RunWriter(path, "x").record(RunSpec.from_dict(s), r.initial, {"step": [0]}, Checkpoint.at(steps[0]),
                                    result=r.result, final=r.final)
    assert "x" not in store.list_runs(path)


def test_sequential_runs_share_a_file(tmp_path):
    path = tmp_path / "runs.h5"
    for lr in (0.01, 0.02, 0.03):
        go(spec({"name": "adam", "steps": 3, "lr": lr}), path)
    assert store.list_runs(path) == ["run-0001", "run-0002", "run-0003"]
    assert [store.read_run(path, r, plugins=PLUGINS).spec["optimizer"]["lr"] for r in store.list_runs(path)] == \
        [0.01, 0.02, 0.03]
    go(spec({"name": "adam", "steps": 3}), path, run_id="mine")
    with pytest.raises(StoreError) as err:
        go(spec({"name": "adam", "steps": 3}), path, run_id="mine")
    assert "run 'mine' exists already" in one_line(err, path)


def test_state_tree_rewrites_in_place(tmp_path):
    """Optimizer state round-trips with its types, and rewriting it (every flush) does not grow the file."""
    tree = {"t": 7, "lr": 0.25, "ok": False, "name": "adam", "none": None, "hist": [1, 2, 3],
            "m": np.arange(6.0).reshape(2, 3), "inner": {"v": np.ones(4), "k": 2}}
    with h5py.File(tmp_path / "t.h5", "w") as f:
        trees.write_tree(f.create_group("s"), tree, "t.h5")
        back = trees.read_tree(f["s"], "test")
    assert back.keys() == tree.keys() and back["inner"].keys() == tree["inner"].keys()
    for k in ("t", "lr", "ok", "name", "none", "hist"):
        assert back[k] == tree[k] and type(back[k]) is type(tree[k])
    assert np.array_equal(back["m"], tree["m"]) and np.array_equal(back["inner"]["v"], tree["inner"]["v"])
    sizes = []
    with h5py.File(tmp_path / "t.h5", "a") as f:
        for i in range(60):
            trees.write_tree(f["s"], {**tree, "t": i, "m": tree["m"] + i}, "t.h5")
            f.flush()
            sizes.append((tmp_path / "t.h5").stat().st_size)
    assert sizes[-1] == sizes[0]
    with pytest.raises(StoreError, match="cannot store optimizer state .f. of type set"):
        with h5py.File(tmp_path / "u.h5", "w") as f:
            trees.write_tree(f.create_group("s"), {"f": {1, 2}}, "u.h5")


# --- statuses and resume -----------------------------------------------------------------------

def test_failed_and_interrupted_runs_keep_their_steps(tmp_path):
    path = tmp_path / "runs.h5"
    adam = {"name": "adam", "steps": 50, "lr": 0.05}
    for error, status in ((RuntimeError("boom"), "failed"), (KeyboardInterrupt(), "interrupted")):
        with pytest.raises(type(error)):
            tcnet.run(spec(adam), recorders=[RunWriter(path, flush_steps=100), Raiser(5, error)],
                      progress=False, plugins=PLUGINS)
    a, b = (store.read_run(path, r, plugins=PLUGINS) for r in store.list_runs(path))
    assert (a.status, a.message) == ("failed", "RuntimeError: boom")
    assert (b.status, b.message) == ("interrupted", "KeyboardInterrupt")
    for rec in (a, b):
        assert np.array_equal(rec.history["step"], np.arange(6)) and rec.checkpoint.step == 5
        assert rec.final is None and rec.checkpoint.opt_state["t"] == 5
    with pytest.raises(StoreError) as err:
        store.load_network(path, "run-0001", plugins=PLUGINS)
    assert "has no final network (it did not finish; stored status failed); use 'run-0001/checkpoint'" in one_line(err, path)


def test_non_finite_run(tmp_path):
    path = tmp_path / "runs.h5"
    s = {"dynamics": {"name": "point", "seed": 0}, "loss": [{"name": "logbarrier"}],
         "optimizer": {"name": "sgd", "steps": 3}}
    x0 = PLUGINS.get("dynamics", "point").create(seed=0).arrays["x"]
    assert np.any(x0 <= 0)  # so -sum(log x) is not finite at the start
    with np.errstate(invalid="ignore", divide="ignore"):
        tcnet.run(s, recorders=[RunWriter(path)], progress=False, plugins=PLUGINS)
    rec = store.read_run(path, "run-0001", plugins=PLUGINS)
    assert rec.status == "non-finite" and "non-finite" in rec.message and rec.steps == 0
    assert np.array_equal(rec.final.arrays["x"], x0)


def test_resume_adam_is_bitwise(tmp_path):
    """Interrupted mid-Adam (in the first stage of a staged optimizer) and resumed: the same steps and final
    loss as an uninterrupted run."""
    opt = {"name": "staged", "stages": [{"name": "adam", "steps": 40, "lr": 0.05}, {"name": "lbfgs"}]}
    ref = go(spec(opt), tmp_path / "ref.h5")
    path = tmp_path / "runs.h5"
    with pytest.raises(KeyboardInterrupt):
        tcnet.run(spec(opt), recorders=[RunWriter(path, flush_steps=7), Raiser(23, KeyboardInterrupt())],
                  progress=False, plugins=PLUGINS)
    out = resume(path, "run-0001", plugins=PLUGINS)
    rec = store.read_run(path, "run-0001", plugins=PLUGINS)
    assert rec.status == "finished" and list(rec.attrs["resumed_at"]) == [23]
    assert out.history.column("step")[0] == 24  # the continuation's own steps
    for key in ("step", "stage", "loss", "grad_norm", "terms/store_bowl"):
        assert np.array_equal(rec.history[key], ref.history.column(key)), key
    assert np.array_equal(rec.final.arrays["J"], ref.final.arrays["J"])
    with pytest.raises(StoreError) as err:
        resume(path, "run-0001", plugins=PLUGINS)
    assert "cannot be resumed (expected status interrupted or failed, found finished)" in one_line(err, path)


def test_resume_mid_lbfgs_reaches_the_minimum(tmp_path, monkeypatch):
    """L-BFGS restarts its curvature memory on resume, so the path differs; both runs must end at
    the unique minimum f* of the strongly convex bowl (mu = 1.1), found independently entry by
    entry. For a mu-strongly convex f, f(x) - f* <= |grad f(x)|^2 / (2 mu), so each final loss is
    within grad_norm^2/(2 mu) (plus rounding of the sum, 1e-14) of f*. The stored evaluation count
    covers both sessions: it equals the objective evaluations counted by hand across them."""
    opt = {"name": "staged", "stages": [{"name": "adam", "steps": 3, "lr": 0.05},
                                       {"name": "lbfgs", "gtol": 1e-9, "ftol": 0.0, "max_iter": 500}]}
    s = spec(opt, N=4)
    ref = go(s, tmp_path / "ref.h5")
    calls = []
    evaluate = tcnet.Objective.evaluate
    monkeypatch.setattr(tcnet.Objective, "evaluate", lambda self, *a: calls.append(1) or evaluate(self, *a))
    path = tmp_path / "runs.h5"
    with pytest.raises(KeyboardInterrupt):
        tcnet.run(s, recorders=[RunWriter(path, flush_steps=1), Raiser(6, KeyboardInterrupt())],
                  progress=False, plugins=PLUGINS)
    ckpt = store.read_run(path, "run-0001", plugins=PLUGINS).checkpoint
    # 3 Adam steps, then 3 L-BFGS iterations; every evaluation so far happened before step 6 was reported
    assert (ckpt.stage, ckpt.evaluations, ckpt.opt_state) == (1, len(calls), {"nit": 3})
    resume(path, "run-0001", plugins=PLUGINS)
    rec = store.read_run(path, "run-0001", plugins=PLUGINS)
    assert rec.status == "finished" and rec.attrs["optimizer_status"] == "converged"
    assert rec.attrs["evaluations"] == len(calls)
    assert np.array_equal(rec.history["step"], np.arange(rec.steps))
    f_star = bowl_minimum(16)
    for loss, gnorm in ((rec.history["loss"][-1], rec.history["grad_norm"][-1]),
                        (ref.history.column("loss")[-1], ref.history.column("grad_norm")[-1])):
        assert 0 <= loss - f_star + 1e-14 <= gnorm**2 / (2 * MU) + 2e-14


class Crash(BaseException):
    """Stands for the process dying at a chosen point of a flush."""


def test_kill_between_the_two_commit_phases(tmp_path, monkeypatch):
    """A flush that wrote its rows and checkpoint slot (phase 1) but died before committing them
    (phase 2): readers see the previous flush's rows and checkpoint, and resuming reproduces the
    uninterrupted run."""
    opt = {"name": "adam", "steps": 30, "lr": 0.05}
    ref = go(spec(opt), tmp_path / "ref.h5")
    path = tmp_path / "runs.h5"
    modify = h5py.AttributeManager.modify

    def dying_modify(self, name, value):
        if name == "rows" and value >= 20:
            raise Crash
        return modify(self, name, value)

    monkeypatch.setattr(h5py.AttributeManager, "modify", dying_modify)
    with pytest.raises(Crash):
        go(spec(opt), path, run_id="r", flush_steps=10)
    monkeypatch.undo()
    with h5py.File(path, "r") as f:
        assert f["runs/r/history/loss"].shape == (20,) and f["runs/r"].attrs["rows"] == 10
    rec = store.read_run(path, "r", plugins=PLUGINS)
    assert rec.status == "interrupted" and rec.steps == 10 and rec.checkpoint.step == 9
    assert rec.checkpoint.opt_state["t"] == 9 and np.array_equal(rec.history["loss"], ref.history.column("loss")[:10])
    resume(path, "r", plugins=PLUGINS)
    rec = store.read_run(path, "r", plugins=PLUGINS)
    assert rec.status == "finished" and np.array_equal(rec.history["loss"], ref.history.column("loss"))


KILLED_BEFORE_THE_LINK = """
import os, sys
import tcnet.store.writer as writer
from tcnet.plugins import Registry
from tcnet.spec import RunSpec
from tcnet.store import RunWriter

def die(runs, run_id, g):  # everything of the run is on disk, its link is not: a SIGKILL here
    runs.file.flush()
    os._exit(9)

writer.link_run = die
plugins = Registry(files=sys.argv[2:])
net = plugins.get("dynamics", "store_linear").create(N=3)
RunWriter(sys.argv[1], "half").record(RunSpec.from_dict({spec!r}), net, None, None, error="never linked")
"""


def test_a_whole_run_killed_before_its_link_is_not_there(tmp_path):
    """RunWriter.record (a study's worker's run) builds the run unlinked: a writer killed before
    the link leaves the file as it was for every reader, and the next writer goes on."""
    path = tmp_path / "runs.h5"
    go(spec({"name": "adam", "steps": 3}), path)
    before = {rid: store.read_run(path, rid, plugins=PLUGINS) for rid in store.list_runs(path)}
    code = KILLED_BEFORE_THE_LINK.format(spec=spec({"name": "adam"}))
    done = subprocess.run([sys.executable, "-c", code, str(path), *map(str, PLUGIN_FILES)], capture_output=True, text=True)
    assert done.returncode == 9, done.stderr
    assert path.stat().st_size > 0 and store.list_runs(path) == ["run-0001"]
    assert np.array_equal(store.read_run(path, "run-0001", plugins=PLUGINS).history["loss"], before["run-0001"].history["loss"])
    go(spec({"name": "adam", "steps": 3}), path, run_id="half")
    assert store.list_runs(path) == ["run-0001", "half"]
    assert store.read_run(path, "half", plugins=PLUGINS).status == "finished"


def test_status_running_reads_interrupted_once_the_writer_is_gone(tmp_path):
    path = tmp_path / "runs.h5"
    net = PLUGINS.get("dynamics", "store_linear").create()
    w = RunWriter(path, "r")
    w.start(tcnet.RunSpec.from_dict(spec({"name": "adam"})), net)
    assert store.read_run(path, "r", plugins=PLUGINS).status == "running"
    w._lock.release()  # what the kernel does when the writer is killed
    rec = store.read_run(path, "r", plugins=PLUGINS)
    assert rec.status == "interrupted" and "stopped without closing the run" in rec.message
    with pytest.raises(StoreError) as err:  # it died before its first flush
        resume(path, "r", plugins=PLUGINS)
    assert "run 'r' has no checkpoint (it stopped before its first flush); start it again" in one_line(err, path)
    with pytest.raises(StoreError, match="run 'r' has no checkpoint"):
        store.load_network(path, "r/checkpoint", plugins=PLUGINS)
    # a later writer holding the lock for another run does not make the dead run look alive
    w2 = RunWriter(path, "r2")
    w2.start(tcnet.RunSpec.from_dict(spec({"name": "adam"})), net)
    assert store.read_run(path, "r", plugins=PLUGINS).status == "interrupted"
    assert store.read_run(path, "r2", plugins=PLUGINS).status == "running"
    w2._lock.release()


# --- one writer at a time ----------------------------------------------------------------------

def test_second_writer_is_refused(tmp_path):
    path = tmp_path / "runs.h5"
    net = PLUGINS.get("dynamics", "store_linear").create()
    w = RunWriter(path, "first")
    w.start(tcnet.RunSpec.from_dict(spec({"name": "adam"})), net)
    with pytest.raises(FileBusyError) as err:
        RunWriter(path).start(tcnet.RunSpec.from_dict(spec({"name": "adam"})), net)
    msg = one_line(err, path)
    assert "another process is writing this file (run 'first', pid" in msg and "two writers on one file are refused" in msg
    with pytest.raises(FileBusyError, match="another process is writing this file"):
        store.save_network(path, "n", net)
    w._lock.release()
    store.save_network(path, "n", net)  # free again


class HoldOpen:
    """A recorder that, at step `at`, has another process open the file for writing with plain
    h5py (HDF5's exclusive lock, not tcnet's) and keep it open for `hold` seconds."""

    def __init__(self, path, at, hold):
        self.path, self.at, self.hold, self.proc = path, at, hold, None

    def start(self, spec, dynamics):
        pass

    def step(self, step):
        if step.step == self.at:
            code = f"import h5py, time\nf = h5py.File({str(self.path)!r}, 'a'); print('open', flush=True); time.sleep({self.hold})"
            self.proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
            assert self.proc.stdout.readline().strip() == "open"
            with pytest.raises(FileBusyError) as err:
                store.list_runs(self.path)
            assert "held open by another process (HDF5 file lock, waited 0.3 s)" in one_line(err, self.path)

    def finish(self, result, final):
        self.proc.wait()


def test_flush_waits_for_a_foreign_open_and_keeps_steps(tmp_path, monkeypatch):
    """While another process holds the file open, readers get a clear error and the writer's flushes
    are postponed with a warning; nothing is lost and the run completes once the file is released."""
    monkeypatch.setattr(hdf5, "OPEN_WAIT", 0.3)  # the module whose _open_h5 reads it
    path = tmp_path / "runs.h5"
    holder = HoldOpen(path, at=3, hold=1.5)
    with pytest.warns(UserWarning, match="is held open by .*: run r keeps its steps in memory and tries to flush them"):
        r = tcnet.run(spec({"name": "adam", "steps": 120}, delay=0.02),
                      recorders=[RunWriter(path, "r", flush_steps=1), holder], progress=False, plugins=PLUGINS)
    rec = store.read_run(path, "r", plugins=PLUGINS)
    assert rec.status == "finished" and np.array_equal(rec.history["loss"], r.history.column("loss"))


# --- bad files ---------------------------------------------------------------------------------

@pytest.fixture
def saved(tmp_path):
    path = tmp_path / "good.h5"
    store.save_network(path, "net", PLUGINS.get("dynamics", "store_linear").create(N=5))
    return path


def test_missing_file(tmp_path):
    with pytest.raises(StoreError) as err:
        store.list_runs(tmp_path / "nope.h5")
    assert "no such file (expected a tcnet HDF5 file)" in one_line(err, tmp_path / "nope.h5")


def test_empty_file_name():
    with pytest.raises(StoreError, match="^'': not a file name"):
        store.list_runs("")


def test_cannot_create(tmp_path):
    net = PLUGINS.get("dynamics", "store_linear").create()
    path = tmp_path / "no-such-dir" / "x.h5"
    with pytest.raises(StoreError) as err:
        store.save_network(path, "n", net)
    assert "cannot create the writer lock file" in one_line(err, path) and "No such file or directory" in str(err.value)


def test_not_hdf5(tmp_path):
    path = tmp_path / "notes.h5"
    path.write_text("hello")
    with pytest.raises(StoreError) as err:
        store.load_network(path, "net")
    assert "not an HDF5 file (expected the HDF5 signature, found 5 bytes beginning b'hello')" in one_line(err, path)
    path.write_bytes(b"")
    with pytest.raises(StoreError, match="found an empty file"):
        store.list_runs(path)


def test_hdf5_but_not_tcnet(tmp_path):
    path = tmp_path / "other.h5"
    with h5py.File(path, "w") as f:
        f["x"] = 1
    with pytest.raises(StoreError) as err:
        store.list_runs(path)
    assert "not a tcnet file (expected root attribute format='tcnet', found no 'format' attribute)" in one_line(err, path)
    with h5py.File(path, "a") as f:
        f.attrs["format"] = "nwb"
    with pytest.raises(StoreError, match="found format='nwb'"):
        store.list_runs(path)
    with pytest.raises(StoreError, match="not a tcnet file"):  # nor is it written into
        store.save_network(path, "n", PLUGINS.get("dynamics", "store_linear").create())


def test_unknown_format_version(saved):
    with h5py.File(saved, "a") as f:
        f.attrs["format_version"] = 5
    with pytest.raises(StoreError) as err:
        store.load_network(saved, "net", plugins=PLUGINS)
    msg = one_line(err, saved)
    assert f"unknown format_version 5 (this tcnet {tcnet.__version__} reads format_version 1, 2, 3 and 4; the file was " \
           f"written by tcnet {tcnet.__version__})" in msg


@pytest.mark.parametrize("missing", ["most", "the last 100 bytes"])
def test_truncated_file(saved, missing):
    """A file cut short is refused: as truncated when more is missing than a killed writer can leave
    unwritten at its end (store.superblock.UNWRITTEN_TAIL), else by the checksum of what is missing."""
    data = saved.read_bytes()
    saved.write_bytes(data[:64] if missing == "most" else data[:-100])
    with pytest.raises(StoreError) as err:
        store.load_network(saved, "net", plugins=PLUGINS)
    msg = one_line(err, saved)
    if missing == "most":
        assert "truncated or corrupt HDF5 file (expected a readable HDF5 file, found:" in msg and "truncated file" in msg
    else:
        assert "damaged file: " in msg and "the file is corrupt" in msg


def test_corrupt_superblock(saved):
    data = bytearray(saved.read_bytes())
    data[8:48] = b"\xff" * 40  # keep the signature, destroy the superblock after it
    saved.write_bytes(bytes(data))
    with pytest.raises(StoreError) as err:
        store.list_runs(saved)
    assert "truncated or corrupt HDF5 file" in one_line(err, saved)


def test_run_whose_network_could_not_be_created(tmp_path):
    path = tmp_path / "runs.h5"
    w = RunWriter(path)
    w.start(tcnet.RunSpec.from_dict(spec({"name": "adam"})), None)
    w.fail(ValueError("N must be positive"))
    rec = store.read_run(path, "run-0001", plugins=PLUGINS)
    assert (rec.status, rec.message, rec.steps, rec.initial_data) == ("failed", "ValueError: N must be positive", 0, None)
    for read in (lambda: rec.initial, lambda: store.load_network(path, "run-0001/initial", plugins=PLUGINS)):
        with pytest.raises(StoreError, match=r"no initial network: it failed before its network was created "
                                             r"\(ValueError: N must be positive\)"):
            read()
    (row,) = store.compare_table([path], plugins=PLUGINS)  # no steps: nothing to report, not zeros
    assert (row["status"], row["loss"], row["steps"], row["wall_time"]) == ("failed", None, None, None)
    # only such a run may lack params/initial
    go(spec({"name": "adam", "steps": 2}), path)
    with h5py.File(path, "a") as f:
        del f["runs/run-0002/params/initial"]
    with pytest.raises(StoreError, match="no params/initial, which only a run that failed"):
        store.read_run(path, "run-0002", plugins=PLUGINS)


def test_malformed_run(tmp_path):
    path = tmp_path / "runs.h5"
    go(spec({"name": "adam", "steps": 2}), path)
    with h5py.File(path, "a") as f:
        del f["runs/run-0001/history/loss"]
    with pytest.raises(StoreError) as err:
        store.read_run(path, "run-0001", plugins=PLUGINS)
    assert "run 'run-0001' history: malformed file (expected a dataset 'loss', found nothing)" in one_line(err, path)
    with h5py.File(path, "a") as f:
        f["runs/run-0001/history"].create_dataset("loss", data=np.zeros(1))
    with pytest.raises(StoreError) as err:
        store.read_run(path, "run-0001", plugins=PLUGINS)
    assert "malformed history (expected 3 rows in every column, found {'loss': 1})" in one_line(err, path)


RUN = "runs/run-0001"


@pytest.mark.parametrize("damage, message", [
    (lambda f: f[RUN].attrs.modify("config", "{not json"), "run 'run-0001': malformed file (expected attribute "
     "'config' to hold JSON, found '{not json')"),
    (lambda f: f[RUN].attrs.modify("config", "[1, 2]"), "attribute 'config' to hold a JSON object, found list"),
    (lambda f: f[RUN].attrs.__setitem__("rows", 2.5), "attribute 'rows' to be an integer, found np.float64(2.5)"),
    (lambda f: f[RUN].attrs.modify("rows", -1), "attribute 'rows' in [0, inf], found -1"),  # was silently wrong
    (lambda f: f[RUN].attrs.__setitem__("checkpoint", "0"), "attribute 'checkpoint' to be an integer, found '0'"),
    (lambda f: f[RUN].attrs.modify("checkpoint", 7), "attribute 'checkpoint' in [-1, 1], found 7"),
    (lambda f: f[RUN].attrs.modify("status", "finishd"), "attribute 'status' one of running, finished"),
    (lambda f: f[f"{RUN}/params/initial"].attrs.__setitem__("seed", "three"),
     "initial network: malformed file (expected attribute 'seed' to be an integer, found 'three')"),
    (lambda f: (f[RUN + "/history"].__delitem__("loss"), f[RUN + "/history"].create_dataset("loss", data=["a"] * 3)),
     "history: malformed file (expected 'loss' to be a 1-D numeric dataset, found dtype object, shape (3,))"),
    (lambda f: (f[RUN + "/history"].__delitem__("loss"), f[RUN + "/history"].create_dataset("loss", data=np.zeros((3, 2)))),
     "expected 'loss' to be a 1-D numeric dataset, found dtype float64, shape (3, 2)"),
    (lambda f: (f[RUN + "/history"].__delitem__("step"), f[RUN + "/history"].create_group("step")),
     "history: malformed file (expected a dataset 'step', found a group)"),
    (lambda f: (f[RUN].__delitem__("checkpoint"), f[RUN].create_dataset("checkpoint", data=1)),
     "malformed file (expected a group 'checkpoint', found a dataset)"),
    (lambda f: f[f"{RUN}/checkpoint/{f[RUN].attrs['checkpoint']}"].attrs.modify("step", 1),
     "expected the checkpoint at the last committed step 2, found step 1"),
])
def test_malformed_metadata_is_refused_in_one_line(tmp_path, capsys, damage, message):
    """Each of these gave a traceback in show/compare/simulate before (and rows < 0 a wrong history)."""
    from tcnet.cli import main
    path = tmp_path / "runs.h5"
    go(spec({"name": "adam", "steps": 2}), path, flush_steps=1)
    with h5py.File(path, "a") as f:
        damage(f)
    with pytest.raises(StoreError) as err:
        store.read_run(path, "run-0001", plugins=PLUGINS)
    assert message in one_line(err, path)
    for command in (["show", path], ["simulate", path, "run-0001/initial"]):
        code = main(["--plugin", str(PLUGIN_FILES[0]), *map(str, command)])
        err = capsys.readouterr().err
        if command[0] != "simulate" or "initial network" in message:  # simulate reads only the network
            assert code == 2 and err.count("\n") == 1 and message in err, (command, err)
    # `compare` reads the row the ended run stored with its closing attributes (docs/FORMAT.md, `table`):
    # never a traceback, at most one line
    code = main(["--plugin", str(PLUGIN_FILES[0]), "compare", str(path)])
    err = capsys.readouterr().err
    assert code in (0, 2) and err.count("\n") <= 1 and "internal error" not in err


def test_missing_names(saved):
    with pytest.raises(StoreError) as err:
        store.load_network(saved, "other", plugins=PLUGINS)
    assert "no network 'other' (networks: net; runs: none;" in one_line(err, saved)
    with pytest.raises(StoreError) as err:
        store.read_run(saved, "run-0009")
    assert "no run 'run-0009' (runs: none)" in one_line(err, saved)
    with pytest.raises(StoreError) as err:
        store.load_network(saved, "net", plugins=Registry(files=[]))
    assert "dynamics 'store_linear' is not registered" in one_line(err, saved)


def test_non_finite_network(saved):
    with h5py.File(saved, "a") as f:  # written so by another tool, which keeps no digest
        f["networks/net/J"][1, 2] = np.nan
        del f["networks/net/J"].attrs["digest"]
    with pytest.raises(StoreError) as err:
        store.load_network(saved, "net", plugins=PLUGINS)
    assert "network 'net': array 'J' has 1 non-finite entries (expected finite values)" in one_line(err, saved)
    net = PLUGINS.get("dynamics", "store_linear").create()
    net.arrays["J"][0, 0] = np.inf
    with pytest.raises(StoreError, match=r"network 'bad' not saved: array\(s\) J hold non-finite values"):
        store.save_network(saved, "bad", net)


def test_bad_names_and_settings(saved):
    net = PLUGINS.get("dynamics", "store_linear").create()
    with pytest.raises(StoreError, match="network name must be a non-empty string without '/', got 'a/b'"):
        store.save_network(saved, "a/b", net)
    with pytest.raises(StoreError, match="network 'net' exists already"):
        store.save_network(saved, "net", net)
    store.save_network(saved, "net", net, overwrite=True)
    assert np.array_equal(store.load_network(saved, "net", plugins=PLUGINS).arrays["J"], net.arrays["J"])
    with pytest.raises(tcnet.ConfigError, match="flush_steps must be an integer in \\[1, inf\\], got 0"):
        RunWriter(saved, flush_steps=0)
    with pytest.raises(tcnet.ConfigError, match="flush_seconds must be in \\(0, inf\\], got -1"):
        RunWriter(saved, flush_seconds=-1)


# --- comparing runs ----------------------------------------------------------------------------

def test_compare_table(tmp_path):
    a, b = tmp_path / "a.h5", tmp_path / "b.h5"
    go(spec({"name": "adam", "steps": 10, "lr": 0.01}), a)
    go(spec({"name": "adam", "steps": 10, "lr": 0.02}), a)
    go(spec({"name": "adam", "steps": 10, "lr": 0.02}, seed=5), b)
    rows = store.compare_table([a, b], plugins=PLUGINS)
    assert [(r["file"], r["run"]) for r in rows] == [(str(a), "run-0001"), (str(a), "run-0002"), (str(b), "run-0001")]
    assert list(rows[0]) == ["file", "run", "status", "dynamics.seed", "optimizer.lr", "loss", "terms/store_bowl",
                             "steps", "evaluations", "wall_time", "summary/spectral_abscissa"]
    assert [(r["dynamics.seed"], r["optimizer.lr"]) for r in rows] == [(3, 0.01), (3, 0.02), (5, 0.02)]
    for row, path in zip(rows, (a, a, b)):
        J = store.load_network(path, row["run"], plugins=PLUGINS).arrays["J"]
        assert row["loss"] == pytest.approx(bowl_value(J), rel=1e-14) and row["terms/store_bowl"] == row["loss"]
        A = J - np.eye(3)  # tau = 1
        assert row["summary/spectral_abscissa"] == pytest.approx(np.max(np.linalg.eigvals(A).real), rel=1e-12)
        assert row["status"] == "finished" and row["steps"] == 10 and row["evaluations"] == 11
        assert 0 < row["wall_time"] < 60
    parsed = list(__import__("csv").DictReader(store.table_csv(rows).splitlines()))
    assert [float(p["loss"]) for p in parsed] == [r["loss"] for r in rows]
    assert store.flatten_spec({"dynamics": {"name": "d"}, "loss": [{"name": "x", "label": "L", "weight": 2}],
                               "optimizer": {"name": "staged", "stages": [{"name": "adam", "lr": 1}]}}) == \
        {"dynamics.name": "d", "loss.L.name": "x", "loss.L.weight": 2, "optimizer.name": "staged",
         "optimizer.stages.0.name": "adam", "optimizer.stages.0.lr": 1}
