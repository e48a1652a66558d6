"""Corruption is detected, never read as data: random byte ranges of a real store are overwritten,
and every reading path (tcnet show, compare, simulate; tcnet.open(...).history; the read that
`resume` starts from) must either return exactly what it returned from the intact file or refuse in
one line (exit 2 and one stderr line for the CLI, a one-line StoreError for the API).

Each corrupted copy is classified as
- harmless: every path returns the original data (the bytes hit free space, padding, or data the
  paths do not read);
- detected: some path refuses in one line and none returns anything else;
- silently wrong: some path returns different data, or fails in any other way (a traceback, an
  internal error, a crash, a hang). There must be none.

Zeros get tests of their own: fletcher32, HDF5's checksum of a chunk, is zero for zeros, so a chunk
zeroed together with its checksum passes HDF5; every chunk zeroed in turn, and every aligned block
of the file, must be refused (the digests, tcnet.store.digests) or harmless.

The copies are read in forked children (so a crash in HDF5 is counted, not fatal) with a seeded RNG:
a failure names its seed, offset and bytes and reproduces. `-m slow` runs a few hundred copies.
"""
import contextlib
import io
import json
import os
import shutil
import signal
import sys
import time
import traceback
from pathlib import Path

import h5py
import numpy as np
import pytest

import tcnet
from tcnet import store
from tcnet.cli import main
from test_store_failures import StopAt  # a recorder that presses Ctrl-C at a step

PREP = {"dynamics": {"name": "linear_decay", "seed": 3, "N": 10, "n_frac": 0.2},
        "loss": [{"name": "decay"}, {"name": "stability", "weight": 1e5}, {"name": "smoothness", "weight": 0.01}],
        "optimizer": {"name": "staged", "stages": [{"name": "adam", "steps": 8, "lr": 0.01},
                                                   {"name": "lbfgs", "max_iter": 15}]}}
# the ids of the two `tcnet train` runs: the study "train" and a hash of each run's spec
FIRST, LAST = "train-c17c071856b4", "train-56895205e59b"
RUNS = [FIRST, "run-0002", "run-0003", LAST]
SIMULATED = ("prep", FIRST, "run-0002/checkpoint", f"{LAST}/initial")  # linear_decay networks
NETWORKS = (*SIMULATED, "run-0003")  # and the toy Gaussian's point, which has no time evolution
SIMULATE = ("--t-max", "0.05", "--dt", "0.01", "--n-init", "3", "--seed", "1")


@pytest.fixture(scope="module")
def real_store(tmp_path_factory):
    """A store as a user makes one: two runs of `tcnet train` (a two-stage Adam -> L-BFGS run, and
    the study definitions train keeps in the file),
    the same spec interrupted in its Adam stage (a checkpoint with Adam's moments), a constrained
    run with extra columns (the toy Gaussian, Lagrangian method), and a saved network."""
    from tcnet_plugins.constraints.toy_gaussian import slides_methods, toy_spec

    path = tmp_path_factory.mktemp("corruption") / "store.h5"
    assert main(["train", "-N", "10", "-F", "0.2", "-A", "8", "-L", "15", "-r", "3", "-f", str(path),
                 "--no-progress"]) == 0
    with pytest.raises(KeyboardInterrupt):
        tcnet.run(PREP, recorders=[store.RunWriter(path, flush_steps=4), StopAt(5)], progress=False)
    toy = tcnet.run(toy_spec({**slides_methods()["lagrangian"], "steps": 60, "tol": 0.0}),
                    recorders=[store.RunWriter(path, flush_steps=25)], progress=False)
    assert main(["train", "-N", "12", "-F", "0.25", "-A", "5", "-L", "10", "-r", "4", "-f", str(path),
                 "--no-progress"]) == 0
    store.save_network(path, "prep", store.load_network(path, FIRST))
    assert store.list_runs(path) == RUNS
    assert store.read_run(path, "run-0002").status == "interrupted" and toy.result.status != "non-finite"
    return path


def _cli(*argv) -> tuple:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def _run_record(path, run_id) -> dict:
    """What `resume` reads before it computes (and `read_run` gives the API): the whole record,
    with the networks built."""
    rec = store.read_run(path, run_id)
    ck = rec.checkpoint
    out = {"spec": rec.spec, "status": rec.status, "message": rec.message,
           "attrs": {k: np.asarray(v).tolist() for k, v in rec.attrs.items()},
           "history": {k: v.tolist() for k, v in rec.history.items()},
           "initial": {k: v.tolist() for k, v in rec.initial.arrays.items()},
           "final": None if rec.final is None else {k: v.tolist() for k, v in rec.final.arrays.items()}}
    if ck is not None:
        out["checkpoint"] = [ck.step, ck.x.tolist(), ck.elapsed, ck.stage, ck.evaluations,
                             {k: np.asarray(v).tolist() for k, v in ck.opt_state.items()}]
    return out


def _paths(path) -> dict:
    """Every reading path: name -> a zero-argument function giving what it reads (CLI: exit code,
    stdout and stderr; API: the data as plain Python values)."""
    paths = {"show": lambda: _cli("show", str(path)),
             "compare": lambda: _cli("compare", "--csv", str(path))}
    for name in SIMULATED:
        paths[f"simulate {name}"] = lambda name=name: _cli("simulate", str(path), name, *SIMULATE)
    for name in NETWORKS:
        paths[f"load_network {name}"] = lambda name=name: {
            k: v.tolist() for k, v in store.load_network(path, name).arrays.items()}
    for run_id in RUNS:
        paths[f"open.history {run_id}"] = lambda run_id=run_id: tcnet.open(path).history(run_id).to_json(
            orient="split", double_precision=15)
        paths[f"read_run {run_id}"] = lambda run_id=run_id: _run_record(path, run_id)
    return paths


def _one_line(text: str) -> bool:
    return text.count("\n") == 1 and text.endswith("\n") and "Traceback" not in text


def _verdict(name, read, original) -> str:
    """'same', 'refused' or 'wrong: <what>' for one reading path of a corrupted copy."""
    try:
        got = read()
    except store.StoreError as err:
        return "refused" if "\n" not in str(err) else f"wrong: multi-line error {str(err)[:200]!r}"
    except Exception as err:  # noqa: BLE001 - anything but tcnet's one-line refusal is a failure
        return f"wrong: {type(err).__name__}: {str(err)[:200]} {traceback.format_exc()[-400:]!r}"
    if name.split()[0] in ("show", "compare", "simulate"):
        code, out, err = got
        if code == 2 and _one_line(err):
            return "refused"
        if code != 0 or err:
            return f"wrong: exit {code}, stderr {err[:300]!r}"
    return "same" if json.dumps(got, sort_keys=True) == original[name] else "wrong: different data"


def _read_copy(path, originals: dict, timeout: float = 120.0) -> dict:
    """The verdicts of every reading path on the file `path`, computed in a forked child (so that a
    crash or a hang is a verdict too)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: read, report one JSON line, exit without running the parent's cleanup
        try:
            os.close(r)
            verdicts = {name: _verdict(name, read, originals) for name, read in _paths(path).items()}
            os.write(w, json.dumps(verdicts).encode())
        finally:
            os._exit(0)
    os.close(w)
    deadline, chunks = time.monotonic() + timeout, []
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            os.close(r)
            return {"all": f"wrong: no answer in {timeout:g} s"}
        time.sleep(0.01)
    with os.fdopen(r, "rb") as fh:
        chunks = fh.read()
    if os.WIFSIGNALED(status):
        return {"all": f"wrong: crashed with signal {os.WTERMSIG(status)}"}
    return json.loads(chunks) if chunks else {"all": "wrong: no verdicts"}


def _corrupt(data: bytes, rng) -> tuple[int, bytes, bytes]:
    """`data` with 1..64 bytes at a random offset replaced by random bytes: (offset, the new bytes,
    the corrupted data)."""
    data = bytearray(data)
    n = int(rng.integers(1, 65))
    offset = int(rng.integers(0, len(data) - n))
    new = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
    data[offset:offset + n] = new
    return offset, new, bytes(data)


def classify(path, copies, workdir) -> tuple[dict, list]:
    """Counts of harmless / detected / silently wrong among the corrupted copies of the store
    `path` that `copies(intact bytes)` yields as (what was done, as a dict; the copy's bytes), and
    the failures (what was done, verdicts). Every copy is read under one name (`workdir`/store.h5,
    where the originals are read too: outputs name the file)."""
    intact, path = path.read_bytes(), workdir / "store.h5"
    path.write_bytes(intact)
    originals = {}
    for name, read in _paths(path).items():
        got = read()
        originals[name] = json.dumps(got, sort_keys=True)
        if name.split()[0] in ("show", "compare", "simulate"):
            assert got[0] == 0 and not got[2], (name, got)
    counts, failures = {"harmless": 0, "detected": 0, "silently wrong": 0}, []
    for done, data in copies(intact):
        path.write_bytes(data)
        verdicts = _read_copy(path, originals)
        wrong = {k: v for k, v in verdicts.items() if v.startswith("wrong")}
        if wrong:
            counts["silently wrong"] += 1
            failures.append({**done, "wrong": wrong})
        elif "refused" in verdicts.values():
            counts["detected"] += 1
        else:
            counts["harmless"] += 1
    return counts, failures


def corruption_counts(path, copies: int, seed: int, workdir) -> tuple[dict, list]:
    """`classify` of `copies` random corruptions of `path` (`_corrupt`), each failure named by its
    seed, offset and bytes."""
    def random_copies(intact):
        rng = np.random.default_rng(seed)
        for i in range(copies):
            offset, new, data = _corrupt(intact, rng)
            yield {"copy": i, "seed": seed, "offset": offset, "bytes": new.hex()}, data

    return classify(path, random_copies, workdir)


def _check(real_store, tmp_path, copies, seed):
    counts, failures = corruption_counts(real_store, copies, seed, tmp_path)
    print(f"\n{copies} corrupted copies of a {real_store.stat().st_size}-byte store (seed {seed}): "
          + ", ".join(f"{k} {v}" for k, v in counts.items()), file=sys.stderr)
    assert not failures, json.dumps(failures[:5], indent=1)
    assert counts["detected"] > 0  # the test corrupts what matters, not only free space


def test_random_corruption_is_detected_or_harmless(real_store, tmp_path):
    _check(real_store, tmp_path, copies=40, seed=1)


@pytest.mark.slow
def test_random_corruption_is_detected_or_harmless_many(real_store, tmp_path):
    _check(real_store, tmp_path, copies=400, seed=2)


# --- zeros: the fletcher32 checksum of zeros is zero, so a zeroed chunk and checksum pass HDF5 -------
def _chunks(path) -> list[tuple[str, int, int]]:
    """(dataset, byte offset, size) of every chunk of every chunked dataset of `path` (the size
    includes the chunk's fletcher32 checksum, which follows its data)."""
    found = []

    def visit(name, obj):
        if isinstance(obj, h5py.Dataset) and obj.chunks is not None:
            for i in range(obj.id.get_num_chunks()):
                info = obj.id.get_chunk_info(i)
                found.append((f"/{name}", info.byte_offset, info.size))

    with h5py.File(path, "r") as f:
        f.visititems(visit)
    return found


def _zeroed(data: bytes, offset: int, size: int) -> bytes:
    return data[:offset] + bytes(len(data[offset:offset + size])) + data[offset + size:]


def test_a_zeroed_chunk_passes_hdf5_and_is_refused(real_store, tmp_path, capsys):
    """Before: `tcnet compare` read the loss of the zeroed chunk as 0 and exited 0."""
    dataset = f"/runs/{FIRST}/history/loss"
    (offset, size), = [(o, n) for name, o, n in _chunks(real_store) if name == dataset]
    path = tmp_path / "store.h5"
    path.write_bytes(_zeroed(real_store.read_bytes(), offset, size))
    with h5py.File(path, "r") as f:  # the premise: HDF5 alone reads the zeros as data
        assert not f[dataset][()].any() and f[f"runs/{FIRST}"].attrs["rows"] > 0
    assert main(["show", str(path)]) == 2
    out, err = capsys.readouterr()
    assert err == (f"tcnet show: {path}: damaged file: {dataset} cannot be read back intact (its "
                   "data does not match its digest: overwritten, e.g. zeroed); the file is corrupt "
                   "(restore it from a copy)\n")
    # a table reads the row the run stored when it ended (docs/FORMAT.md, `table`), not the damaged chunk:
    # it shows the loss the run ended with, never the zeros
    row = {r["run"]: r for r in store.compare_table([path])}[FIRST]
    assert row["loss"] == store.read_run(real_store, FIRST).history["loss"][-1] != 0
    assert store.read_run(path, "run-0002").steps == 6  # the other runs read as before


def _check_zeroed(real_store, tmp_path, spans: list, what: str):
    def copies(intact):
        for where, offset, size in spans:
            yield {"zeroed": where, "offset": offset, "size": size}, _zeroed(intact, offset, size)

    counts, failures = classify(real_store, copies, tmp_path)
    print(f"\n{len(spans)} copies of a {real_store.stat().st_size}-byte store, {what} zeroed: "
          + ", ".join(f"{k} {v}" for k, v in counts.items()), file=sys.stderr)
    assert not failures, json.dumps(failures[:5], indent=1)
    assert counts["detected"] > 0


def test_every_zeroed_chunk_is_detected_or_harmless(real_store, tmp_path):
    """Each chunk of every dataset zeroed in turn, with its checksum: refused or not read at all
    (rows past a run's committed rows, the checkpoint slot not committed)."""
    chunks = _chunks(real_store)
    assert len(chunks) > 50 and any("/history/" in name for name, _, _ in chunks)
    _check_zeroed(real_store, tmp_path, chunks, "one chunk")


@pytest.mark.parametrize("block", [16384, pytest.param(512, marks=pytest.mark.slow)])
def test_every_zeroed_block_is_detected_or_harmless(real_store, tmp_path, block):
    """Each aligned block of the file (16 KiB; with -m slow 512 bytes, a disk sector) zeroed in
    turn, as a disk or a file system that loses a block leaves it. Before, two of the 512-byte
    blocks read silently as zeros: one holding a whole history chunk of a run with its checksum,
    one a network's array."""
    size = real_store.stat().st_size
    _check_zeroed(real_store, tmp_path, [(f"block {k}", k * block, block) for k in range(-(-size // block))],
                  f"one {block}-byte block")


def test_the_intact_store_reads_the_same_twice(real_store, tmp_path):
    """The classification's premise: an uncorrupted copy is 'harmless' on every path."""
    originals = {name: json.dumps(read(), sort_keys=True) for name, read in _paths(real_store).items()}
    assert set(_read_copy(real_store, originals).values()) == {"same"}


def test_a_failed_checksum_names_the_object(real_store, tmp_path, capsys):
    """One byte of a history chunk changed: the fletcher32 checksum of the chunk fails, and the
    refusal names the dataset."""
    path = tmp_path / "store.h5"
    with h5py.File(real_store, "r") as f:
        offset = f[f"runs/{FIRST}/history/loss"].id.get_chunk_info(0).byte_offset
    data = bytearray(real_store.read_bytes())
    data[offset + 3] ^= 0x10
    path.write_bytes(bytes(data))
    with pytest.raises(store.StoreError) as err:
        store.read_run(path, FIRST)
    assert str(err.value).startswith(f"{path}: damaged file: /runs/{FIRST}/history/loss cannot be read "
                                     "back intact (HDF5: ")
    assert "\n" not in str(err.value)
    assert main(["show", str(path)]) == 2
    out, err = capsys.readouterr()
    assert err.startswith(f"tcnet show: {path}: damaged file: /runs/{FIRST}/history/loss") and err.count("\n") == 1
    assert store.read_run(path, "run-0002").steps == 6  # the other runs read as before


def test_a_version_1_store_stays_version_1(tmp_path):
    """Writing into a store of format version 1 keeps its variable-length strings (and version);
    the new objects are checksummed all the same, and everything reads back."""
    path = tmp_path / "v1.h5"
    shutil.copy(Path(__file__).parent / "data" / "store_v1.h5", path)
    net = store.load_network(path, "prep")
    store.save_network(path, "again", net)
    with h5py.File(path, "r") as f:
        assert f.attrs["format_version"] == 1 and isinstance(f["networks/again"].attrs["dynamics"], str)
        assert all(f[f"networks/again/{k}"].fletcher32 for k in net.arrays)
    again = store.load_network(path, "again")
    assert all(np.array_equal(again.arrays[k], v) for k, v in net.arrays.items())
    assert store.file_info(path)["format_version"] == 1
