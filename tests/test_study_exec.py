"""Study execution across processes: a local pool of 2 workers and a dask LocalCluster give the
same runs bit for bit; a driver killed mid-study (SIGKILL) is resumed without redoing finished
runs. The minimum of the quadratic is c (closed form), which every run must reach."""
from pathlib import Path
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from tcnet.store import list_runs, read_run
from tcnet.study import Study, stored
TESTS = Path(__file__).parent

PLUGIN = str(TESTS / "quadratic_plugin.py")
C = np.array([1.0, -2.0, 0.5])


def quadratic_study():
    base = {"dynamics": {"name": "point", "n": 3}, "loss": [{"name": "quadratic"}],
            "optimizer": {"name": "staged", "stages": [{"name": "adam", "steps": 20, "lr": 0.1},
                                                       {"name": "lbfgs", "max_iter": 100, "gtol": 1e-10}]}}
    return Study(base, grid={"loss.quadratic.h": [[1.0, 4.0, 0.25], [2.0, 2.0, 2.0]]}, repeats=2, seed=99,
                 name="exec", plugin_files=[PLUGIN])


def records(path):
    return {rid: read_run(path, rid) for rid in list_runs(path)}


def test_local_pool_and_dask_cluster_give_identical_runs(tmp_path):
    distributed = pytest.importorskip("distributed")
    study = quadratic_study()
    report = study.run(tmp_path / "local.h5", workers=2, progress=False)
    assert len(report.done) == 4
    with distributed.LocalCluster(host="127.0.0.1", n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        report = study.run(tmp_path / "dask.h5", client, progress=False)
        workers = {w["host"] for w in client.scheduler_info()["workers"].values()}
    assert len(report.done) == 4 and workers == {"127.0.0.1"}
    local, dask = records(tmp_path / "local.h5"), records(tmp_path / "dask.h5")
    assert sorted(local) == sorted(dask) == sorted(p.run_id for p in study.runs())
    for rid, a in local.items():
        b = dask[rid]
        assert a.status == b.status == "finished"
        assert a.spec == b.spec
        np.testing.assert_allclose(a.final_data.arrays["x"], C, atol=1e-6)  # the closed-form minimum
        for name in ("initial_data", "final_data"):
            for k, v in getattr(a, name).arrays.items():
                np.testing.assert_array_equal(v, getattr(b, name).arrays[k])
        assert set(a.history) == set(b.history)
        for k in a.history:
            if k != "wall_time":
                np.testing.assert_array_equal(a.history[k], b.history[k])


SLOW_PLUGIN = '''
import time
import autograd.numpy as anp
import numpy as np
from tcnet import Dynamics, Loss, State, hookimpl
from tcnet.settings import REQUIRED, Real, Settings, Text


class SlowPoint(Dynamics):
    """A point in R^3 whose creation logs its seed to `log` and then sleeps `sleep` seconds."""

    name = "slow_point"
    trainable = ("x",)
    SETTINGS = Settings(Real("sleep", 0.0, "pause when built", low=0, unit="s"),
                        Text("log", REQUIRED, "file the seed of every built network is appended to"))

    @classmethod
    def build(cls, seed, sleep, log):
        with open(log, "a") as f:
            f.write(f"{seed}\\n")
        time.sleep(sleep)
        return cls({"x": np.random.default_rng(seed).normal(size=3)}, {"sleep": sleep, "log": log}, seed)

    def make_state(self, params):
        return State(self, params)


class Norm2(Loss):
    name = "norm2"

    def __call__(self, state):
        return 0.5 * anp.sum(state.params["x"] ** 2)


@hookimpl
def tcnet_dynamics():
    return [SlowPoint]


@hookimpl
def tcnet_losses():
    return [Norm2]
'''

DRIVER = '''
import sys
from tcnet.study import Study, stored


def main():
    study = Study.from_toml(sys.argv[1])
    study.run(sys.argv[2], workers=2, progress=False, on_result=lambda p, o: print(p.run_id, flush=True))


if __name__ == "__main__":
    main()
'''


def test_killed_driver_is_resumed_without_redoing_finished_runs(tmp_path):
    (tmp_path / "slow_plugin.py").write_text(SLOW_PLUGIN)
    (tmp_path / "driver.py").write_text(DRIVER)
    log = tmp_path / "created.log"
    (tmp_path / "s.toml").write_text(
        '[study]\nname = "kill"\nseed = 8\nrepeats = 8\nplugins = ["slow_plugin.py"]\n'
        f'[base.dynamics]\nname = "slow_point"\nsleep = 0.6\nlog = "{log}"\n'
        '[[base.loss]]\nname = "norm2"\n[base.optimizer]\nname = "adam"\nsteps = 5\n')
    path = tmp_path / "kill.h5"
    driver = subprocess.Popen([sys.executable, str(tmp_path / "driver.py"), str(tmp_path / "s.toml"), str(path)],
                              stdout=subprocess.PIPE, text=True)
    printed = [driver.stdout.readline().strip() for _ in range(3)]  # 3 runs written
    os.kill(driver.pid, signal.SIGKILL)
    driver.wait()
    driver.stdout.close()
    time.sleep(1.5)  # the orphaned workers notice the driver is gone and exit
    before = records(path)
    finished = {rid for rid, rec in before.items() if rec.status == "finished"}
    assert set(printed) <= finished and len(finished) < 8
    study = Study.from_toml(tmp_path / "s.toml")
    report = study.run(path, workers=2, progress=False)
    assert report.skipped == len(finished) and len(report.done) == 8 - len(finished)
    after = records(path)
    by_id = {p.run_id: p for p in study.runs()}
    best = stored(path, study.runs())  # a run the kill caught mid-write is redone as '<id>.2'
    assert all(rec.status == "finished" for rec, _ in best.values()) and len(best) == 8
    assert all(best[rid][1] == 1 for rid in finished)
    created = log.read_text().split()
    for rid in finished:
        assert created.count(str(by_id[rid].seed)) == 1  # created once: not redone
        np.testing.assert_array_equal(after[rid].history["wall_time"], before[rid].history["wall_time"])
