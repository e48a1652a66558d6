"""Digests (tcnet.store.digests, docs/FORMAT.md "Digests"): a history column's digest follows its
committed rows across commits of any size, across block boundaries, a resume and a commit killed
between its phases; a commit rehashes only the last block, whatever the length of the run; and
files of older versions get no digests when written into."""
import hashlib
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

import tcnet
from tcnet import store
from tcnet.optim import Step
from tcnet.plugins import Registry
from tcnet.spec import RunSpec
from tcnet.store import RunWriter, StoreError, digests

PLUGIN = Path(__file__).parent / "plugins_for_tests" / "store_linear.py"
PLUGINS = Registry(files=[PLUGIN])
SPEC = RunSpec.from_dict({"dynamics": {"name": "store_linear", "seed": 1, "N": 2}, "loss": [{"name": "store_bowl"}],
                          "optimizer": {"name": "adam", "steps": 1, "lr": 0.1}})


def independent(rows: np.ndarray) -> int:
    """The digest of a column's rows as docs/FORMAT.md states it, computed here with hashlib."""
    rows = rows.astype(rows.dtype.newbyteorder("<"))
    total = 0
    for k in range(0, len(rows), 1024):
        key = (k // 1024).to_bytes(8, "little")
        total += int.from_bytes(hashlib.blake2b(rows[k:k + 1024].tobytes(), digest_size=8, key=key).digest(), "little")
    return total % 2**64


def commit_rows(writer: RunWriter, start: int, n: int, extra: bool) -> None:
    """Steps `start` .. `start + n - 1` through the writer, committed in one flush (with a column
    `extra/late` if `extra`)."""
    rng = np.random.default_rng(start)
    for k in range(start, start + n):
        writer.step(Step(k, 0, k + 1, rng.random(), {"store_bowl": rng.random()}, rng.random(), k / 10.0,
                         np.full(4, float(k)), {"m": np.full(4, 0.5 * k)}, {"late": rng.random()} if extra else {}))
    writer.flush()


def new_writer(path, **kw) -> RunWriter:
    return RunWriter(path, flush_steps=10**9, flush_seconds=1e9, **kw)


def committed(path, run_id="run-0001") -> dict:
    """{column: (its committed rows, its digest for the committed slot)}, read with plain h5py."""
    with h5py.File(path, "r") as f:
        g = f[f"runs/{run_id}"]
        rows, slot = int(g.attrs["rows"]), int(g.attrs["checkpoint"])
        found = {}
        g["history"].visititems(lambda name, ds: found.update({name: (ds[:rows], ds.attrs["digests"][slot])})
                                if isinstance(ds, h5py.Dataset) else None)
    return found


def test_commits_across_blocks_keep_each_digest_that_of_the_committed_rows(tmp_path):
    """Commits of 50, 1000, 1, 2047 and 3 rows (crossing the 1024-row blocks, with a column that
    appears at row 1051 and is NaN before it), a resume, and more commits."""
    path = tmp_path / "runs.h5"
    writer = new_writer(path)
    writer.start(SPEC, PLUGINS.get("dynamics", "store_linear").create(seed=1, N=2))
    start = 0
    for n in (50, 1000, 1, 2047, 3):
        commit_rows(writer, start, n, extra=start >= 1051)
        start += n
        for name, (rows, digest) in committed(path).items():
            assert len(rows) == start and digest == independent(rows), (name, start)
    writer.fail(KeyboardInterrupt())
    rec = store.read_run(path, "run-0001", plugins=PLUGINS)
    assert rec.steps == 3101 and np.isnan(rec.history["extra/late"][:1051]).all()
    resumed = new_writer(path, run_id="run-0001", resume_from=3100)
    resumed.start(SPEC, rec.initial)
    commit_rows(resumed, 3101, 1100, extra=True)
    resumed.fail(KeyboardInterrupt())
    for name, (rows, digest) in committed(path).items():
        assert len(rows) == 4201 and digest == independent(rows), name
    assert store.read_run(path, "run-0001", plugins=PLUGINS).steps == 4201


def test_a_commit_stopped_after_its_first_phase_leaves_the_committed_run_readable(tmp_path, monkeypatch):
    """Phase 1 writes rows and digests into the slot that is not committed; stopped before phase 2
    flips the slot (as a kill there would), the run reads back its previous commit, digests and all."""
    path = tmp_path / "runs.h5"
    writer = new_writer(path)
    writer.start(SPEC, PLUGINS.get("dynamics", "store_linear").create(seed=1, N=2))
    commit_rows(writer, 0, 1030, extra=False)
    before = store.read_run(path, "run-0001", plugins=PLUGINS).history
    modify = h5py.AttributeManager.modify

    def killed(self, name, value):
        if name == "rows":
            raise KeyboardInterrupt
        modify(self, name, value)

    monkeypatch.setattr(h5py.AttributeManager, "modify", killed)
    with pytest.raises(KeyboardInterrupt):
        commit_rows(writer, 1030, 40, extra=True)
    monkeypatch.undo()
    writer._lock.release()
    with h5py.File(path, "r") as f:
        assert len(f["runs/run-0001/history/loss"]) == 1070  # phase 1 was written
    after = store.read_run(path, "run-0001", plugins=PLUGINS).history
    assert after.keys() == {*before, "extra/late"} and np.isnan(after["extra/late"]).all()
    assert all(np.array_equal(after[k], before[k]) for k in before)


class Column:
    """A history column without HDF5 that counts the rows read from it (the digests need only
    `dtype`, `attrs` and slicing)."""

    class Attrs(dict):
        def modify(self, name, value):
            self[name] = value

    def __init__(self, values):
        self.values, self.dtype, self.attrs, self.read = values, values.dtype, self.Attrs(), 0

    def __getitem__(self, index):
        out = self.values[index]
        self.read += len(out)
        return out


def test_a_commit_rehashes_the_last_block_only_however_long_the_run():
    values = np.random.default_rng(0).random(1_000_050)
    column = Column(values[:1_000_000])
    column.attrs[digests.DIGESTS] = np.array([independent(column.values), 0], dtype=np.uint64)
    column.read = 0
    digests.append_rows(column, 1_000_000, values[1_000_000:], committed=0, slot=1)
    assert column.read == 1_000_000 % 1024  # the committed rows of the last, partly filled block
    assert column.attrs[digests.DIGESTS][1] == independent(values)


def test_a_zeroed_checkpoint_or_network_array_is_refused(tmp_path):
    path = tmp_path / "runs.h5"
    tcnet.run(SPEC.as_dict(), recorders=[RunWriter(path)], progress=False, plugins=PLUGINS)
    with h5py.File(path, "a") as f:  # zeros, as HDF5 reads a chunk zeroed with its checksum
        c = f["runs/run-0001/checkpoint"][str(f["runs/run-0001"].attrs["checkpoint"])]
        c["x"][()] = 0.0
    with pytest.raises(StoreError, match=r"damaged file: /runs/run-0001/checkpoint/\d/x cannot be read back intact"):
        store.read_run(path, "run-0001", plugins=PLUGINS)
    with pytest.raises(StoreError, match=r"damaged file: /runs/run-0001/checkpoint/\d/x cannot be read back intact"):
        store.load_network(path, "run-0001/checkpoint", plugins=PLUGINS)


def test_an_older_store_gets_no_digests_and_keeps_its_version(tmp_path):
    """Version 2 (and 1, 3) files are written as before: an older tcnet writing into them next
    would leave digests stale."""
    path = tmp_path / "v2.h5"
    shutil.copy(Path(__file__).parent / "data" / "store_v2.h5", path)
    net = store.load_network(path, store.list_networks(path)[0])
    store.save_network(path, "again", net)
    tcnet.run(SPEC.as_dict(), recorders=[RunWriter(path)], progress=False, plugins=PLUGINS)
    with h5py.File(path, "r") as f:
        assert f.attrs["format_version"] == 2
        found = []
        f.visititems(lambda name, obj: found.append(name) if {"digest", "digests"} & set(obj.attrs) else None)
        assert found == []
    assert store.read_run(path, store.list_runs(path)[-1], plugins=PLUGINS).status == "finished"
