"""HDF5 store: saved networks and run histories that survive a killed process and load back.

The layout is documented in docs/FORMAT.md (readable with plain h5py). In short: a root with
attributes format="tcnet", format_version, tcnet_version; /networks/<name> (one dataset per
parameter array, attributes dynamics, config JSON, seed); /runs/<id> (the run spec as JSON, a
status, params/initial and params/final stored like networks, a growing history/, and two
checkpoint slots, one of which holds the last flushed step from which an interrupted run resumes).

Crash safety: a `RunWriter` buffers steps in memory and, every `flush_steps` steps or
`flush_seconds` seconds, opens the file, commits, and closes it again. Between flushes the file is
closed and consistent, so SIGKILL loses at most the steps since the last flush; within a flush a
two-phase commit (see `RunWriter`) keeps the committed rows and checkpoint intact. One writer at a
time: a writer holds an exclusive `flock` on the sidecar file `<file>.lock` for the whole run (the
kernel drops it when the process dies); a second writer is refused. A run whose status is still
"running" while nobody holds that lock for it was killed: it reads back as "interrupted".

Nothing is pickled: optimizer state (numpy arrays, numbers, strings, None, lists of numbers and
nested dicts of these) is stored as datasets and groups.
"""
import csv
import fcntl
import io
import json
import numbers
import os
import socket
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import h5py
import numpy as np

from tcnet import __version__
from tcnet.dynamics import Dynamics
from tcnet.plugins import Registry, registry as default_registry
from tcnet.run import Checkpoint, RunResult, RunSpec, run
from tcnet.validate import ConfigError, integer, positive

FORMAT = "tcnet"
FORMAT_VERSION = 1
HISTORY_COLUMNS = {"step": "int64", "stage": "int64", "loss": "float64", "grad_norm": "float64",
                   "wall_time": "float64"}
CHUNK = 1024  # rows per history chunk
OPEN_WAIT = 10.0  # seconds to wait for another process's HDF5 lock when reading or saving a network
FLUSH_WAIT = 0.5  # ... at a periodic flush (then the steps stay buffered until the next one)
FINAL_WAIT = 60.0  # ... when a run starts, finishes or fails
NETWORK_PARTS = ("initial", "final", "checkpoint")
FINISHED = ("finished", "non-finite")  # statuses with a final network
_SIGNATURE = b"\x89HDF\r\n\x1a\n"


class StoreError(ValueError):
    """A store file cannot be read or written as asked; the message names the file, what was
    expected and what was found."""


class FileBusyError(StoreError):
    """Another process is writing (or holds open) the file."""


# --- opening files -----------------------------------------------------------------------------

def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _one_line(err) -> str:
    return " ".join(str(err).split())


def _check_signature(path: Path) -> None:
    """Fail unless `path` is an existing file starting with the HDF5 signature (at offset 0, or at
    512, 1024, ... after a user block)."""
    if not path.exists():
        raise StoreError(f"{path}: no such file (expected a tcnet HDF5 file)")
    if not path.is_file():
        raise StoreError(f"{path}: not a regular file (expected a tcnet HDF5 file)")
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(16)
        offset = 0
        while offset + 8 <= size:
            fh.seek(offset)
            if fh.read(8) == _SIGNATURE:
                return
            offset = 512 if offset == 0 else 2 * offset
    found = "an empty file" if size == 0 else f"{size} bytes beginning {head!r}"
    raise StoreError(f"{path}: not an HDF5 file (expected the HDF5 signature, found {found})")


def _open_h5(path: Path, mode: str, wait: float | None) -> h5py.File:
    """h5py.File(path, mode), retrying while another process holds the HDF5 file lock (a writer
    mid-flush, a reader); errors become one-line StoreErrors."""
    wait = OPEN_WAIT if wait is None else wait
    deadline = time.monotonic() + wait
    while True:
        try:
            return h5py.File(path, mode)
        except OSError as err:
            locked = isinstance(err, BlockingIOError) or "unable to lock file" in str(err)
            if not locked:
                if not path.exists():
                    raise StoreError(f"{path}: cannot create the file ({_one_line(err)})") from None
                _check_signature(path)
                raise StoreError(f"{path}: truncated or corrupt HDF5 file (expected a readable HDF5 "
                                 f"file, found: {_one_line(err)})") from None
            if time.monotonic() >= deadline:
                raise FileBusyError(f"{path}: the file is held open by another process (HDF5 file "
                                    f"lock, waited {wait:g} s); close it there and retry") from None
            time.sleep(0.05)


def _check_root(path: Path, f: h5py.File) -> None:
    fmt = f.attrs.get("format")
    if fmt is None or _text(fmt) != FORMAT:
        found = "no 'format' attribute" if fmt is None else f"format={_text(fmt)!r}"
        raise StoreError(f"{path}: not a tcnet file (expected root attribute format='{FORMAT}', found {found})")
    version = f.attrs.get("format_version")
    if version is None or not isinstance(version, numbers.Integral) or int(version) != FORMAT_VERSION:
        version = int(version) if isinstance(version, numbers.Integral) else version
        writer = _text(f.attrs.get("tcnet_version", "unknown"))
        raise StoreError(f"{path}: unknown format_version {version!r} (this tcnet {__version__} reads "
                         f"format_version {FORMAT_VERSION}; the file was written by tcnet {writer})")


@contextmanager
def _reading(path, wait: float | None = None):
    """The open, validated file for reading; HDF5 errors inside become StoreErrors."""
    path = Path(path)
    _check_signature(path)
    f = _open_h5(path, "r", wait)
    try:
        _check_root(path, f)
        yield f
    except (OSError, KeyError, RuntimeError) as err:
        raise StoreError(f"{path}: corrupt or malformed tcnet file (expected the layout of "
                         f"docs/FORMAT.md, found: {_one_line(err)})") from None
    finally:
        f.close()


@contextmanager
def _writing(path: Path, wait: float | None = None):
    """The file open for appending. A missing file is first made complete (root attributes) under
    a temporary name and renamed into place, so no reader ever sees a half-created file. The
    caller holds the writer lock."""
    if not path.exists():
        partial = path.with_name(f".{path.name}.creating-{os.getpid()}")
        with _open_h5(partial, "w", wait) as f:
            f.attrs["format"] = FORMAT
            f.attrs["format_version"] = FORMAT_VERSION
            f.attrs["tcnet_version"] = __version__
        os.replace(partial, path)
    _check_signature(path)
    f = _open_h5(path, "a", wait)
    try:
        _check_root(path, f)
        yield f
    finally:
        f.close()


class _WriteLock:
    """Exclusive right to write one store file: `flock` on the sidecar `<file>.lock`, which holds
    a JSON description of the writer (pid, host, run). The kernel releases the lock when the
    process dies, so a killed writer never blocks later ones."""

    def __init__(self, path: Path):
        self.path = path
        self.lockpath = path.with_name(path.name + ".lock")
        self.fd = None

    def acquire(self, owner: dict, wait: float = 0.5) -> None:
        deadline = time.monotonic() + wait
        while True:
            try:
                fd = os.open(self.lockpath, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as err:
                raise StoreError(f"{self.path}: cannot create the writer lock file {self.lockpath} "
                                 f"({err.strerror})") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                if time.monotonic() >= deadline:
                    raise FileBusyError(f"{self.path}: another process is writing this file "
                                        f"({_describe(_lock_owner(self.lockpath))}); two writers on "
                                        "one file are refused") from None
                time.sleep(0.05)
                continue
            try:  # the previous holder may have unlinked the path between our open and flock
                same = os.stat(self.lockpath).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                self.fd = fd
                self.describe(owner)
                return
            os.close(fd)

    def describe(self, owner: dict) -> None:
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, json.dumps(owner).encode(), 0)

    def release(self) -> None:
        if self.fd is None:
            return
        try:
            os.unlink(self.lockpath)  # unlinked while still held: see the inode check in acquire
        except FileNotFoundError:
            pass
        os.close(self.fd)
        self.fd = None


def _lock_owner(lockpath: Path) -> dict | None:
    """The description of the process holding the writer lock, or None if nobody holds it."""
    try:
        fd = os.open(lockpath, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                return json.loads(os.pread(fd, 4096, 0).decode() or "{}")
            except ValueError:
                return {}
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def _describe(owner: dict | None) -> str:
    if not owner:
        return "writer unknown"
    run_id = f"run {owner['run']!r}, " if owner.get("run") else ""
    return f"{run_id}pid {owner.get('pid')} on host {owner.get('host')}"


def _owner(run_id=None) -> dict:
    return {"pid": os.getpid(), "host": socket.gethostname(), "run": run_id}


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


# --- networks ----------------------------------------------------------------------------------

def _h5name(name, what: str, path: Path) -> str:
    if not isinstance(name, str) or not name or "/" in name or name in (".", ".."):
        raise StoreError(f"{path}: {what} name must be a non-empty string without '/', got {name!r}")
    return name


@dataclass(frozen=True)
class NetworkData:
    """A network as stored: plugin name, configuration, seed and arrays (no plugin needed)."""

    where: str
    dynamics: str
    config: dict
    seed: int | None
    arrays: dict

    def build(self, plugins: Registry | None = None) -> Dynamics:
        """The ready Dynamics instance, through the plugin registry."""
        plugins = plugins or default_registry()
        if self.dynamics not in plugins.entries["dynamics"]:
            known = ", ".join(sorted(plugins.entries["dynamics"])) or "none"
            raise StoreError(f"{self.where}: dynamics {self.dynamics!r} is not registered (registered: "
                             f"{known}); install or load the plugin that provides it")
        try:
            return plugins.get("dynamics", self.dynamics)(self.arrays, self.config, self.seed)
        except ConfigError as err:
            raise StoreError(f"{self.where}: the saved network fails validation: {err}") from None


def _write_network(group: h5py.Group, dynamics: Dynamics, path: Path) -> None:
    seed = dynamics.seed
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral)):
        raise StoreError(f"{path}: network seed must be an integer or None, got {seed!r}")
    try:
        config = json.dumps(dynamics.config, sort_keys=True)
    except TypeError as err:
        raise StoreError(f"{path}: network config must be JSON-serializable ({err})") from None
    group.attrs["dynamics"] = dynamics.name
    group.attrs["config"] = config
    if seed is not None:
        group.attrs["seed"] = np.int64(seed)
    for key, value in dynamics.arrays.items():
        group.create_dataset(_h5name(key, "array", path), data=np.asarray(value, dtype=np.float64))


def _read_network(group: h5py.Group, where: str) -> NetworkData:
    for key in ("dynamics", "config"):
        if key not in group.attrs:
            raise StoreError(f"{where}: malformed network (expected attribute {key!r}, found "
                             f"{sorted(group.attrs) or 'no attributes'})")
    arrays = {}
    for key, ds in group.items():
        if not isinstance(ds, h5py.Dataset):
            raise StoreError(f"{where}: malformed network (expected only array datasets, found group {key!r})")
        a = np.array(ds[()], dtype=np.float64)
        bad = np.count_nonzero(~np.isfinite(a))
        if bad:
            raise StoreError(f"{where}: array {key!r} has {bad} non-finite entries (expected finite values)")
        arrays[key] = a
    seed = group.attrs.get("seed")
    return NetworkData(where, _text(group.attrs["dynamics"]), json.loads(_text(group.attrs["config"])),
                       None if seed is None else int(seed), arrays)


def save_network(path, name: str, dynamics: Dynamics, *, overwrite: bool = False) -> None:
    """Save `dynamics` as /networks/<name> (the file is created if missing)."""
    path = Path(path)
    _h5name(name, "network", path)
    bad = [k for k, a in dynamics.arrays.items() if not np.all(np.isfinite(a))]
    if bad:
        raise StoreError(f"{path}: network {name!r} not saved: array(s) {', '.join(bad)} hold non-finite values")
    lock = _WriteLock(path)
    lock.acquire(_owner())
    try:
        with _writing(path) as f:
            networks = f.require_group("networks")
            if name in networks:
                if not overwrite:
                    raise StoreError(f"{path}: network {name!r} exists already (pass overwrite=True to replace it)")
                del networks[name]
            _write_network(networks.create_group(name, track_order=True), dynamics, path)
    finally:
        lock.release()


def _network_data(f: h5py.File, path: Path, name: str) -> tuple[NetworkData, np.ndarray | None]:
    """The stored network `name` and, for '<run>/checkpoint', the checkpoint's parameter vector."""
    networks = f.get("networks", {})
    if name in networks:
        return _read_network(networks[name], f"{path}: network {name!r}"), None
    runs = f.get("runs", {})
    run_id, _, part = name.partition("/")
    part = part or "final"
    if run_id not in runs or part not in NETWORK_PARTS:
        raise StoreError(
            f"{path}: no network {name!r} (networks: {', '.join(networks) or 'none'}; runs: "
            f"{', '.join(runs) or 'none'}; a run's network is '<run>', '<run>/initial', '<run>/final' "
            "or '<run>/checkpoint')")
    g = runs[run_id]
    if part == "checkpoint":
        c = _checkpoint_group(g)
        if c is None:
            raise StoreError(f"{path}: run {run_id!r} has no checkpoint (it stopped before its first flush)")
        data = _read_network(g["params/initial"], f"{path}: run {run_id!r} checkpoint")
        return data, np.array(c["x"][()], dtype=np.float64)
    status = _text(g.attrs.get("status", "unknown"))
    if part == "final" and status not in FINISHED:
        raise StoreError(f"{path}: run {run_id!r} has no final network (it did not finish; stored status "
                         f"{status}); use '{run_id}/checkpoint' for its last checkpoint or '{run_id}/initial'")
    return _read_network(g[f"params/{part}"], f"{path}: run {run_id!r} {part} network"), None


def load_network(path, name: str, *, plugins: Registry | None = None) -> Dynamics:
    """The network `name` as a ready Dynamics: a saved network /networks/<name>, or a run's network
    addressed as '<run>' (its final network), '<run>/final', '<run>/initial' or
    '<run>/checkpoint' (the initial network with the checkpoint's trainable parameters)."""
    path = Path(path)
    with _reading(path) as f:
        data, theta = _network_data(f, path, name)
    base = data.build(plugins)
    if theta is None:
        return base
    if theta.shape != (base.size,):
        raise StoreError(f"{data.where}: checkpoint x has shape {theta.shape}, expected ({base.size},)")
    return base.with_vector(theta)


def list_networks(path) -> list[str]:
    """Names of the saved networks (/networks/<name>)."""
    with _reading(path) as f:
        return list(f.get("networks", {}))


def network_data(path, name: str) -> NetworkData:
    """A saved network as stored (name, config, seed, arrays), without building it."""
    path = Path(path)
    with _reading(path) as f:
        return _network_data(f, path, name)[0]


def file_info(path) -> dict:
    """The root attributes: format, format_version, tcnet_version."""
    with _reading(path) as f:
        return {k: (_text(v) if isinstance(v, (str, bytes)) else int(v)) for k, v in f.attrs.items()}


def save_trajectories(path, t, x, **attrs) -> None:
    """Write simulated trajectories (a separate file, see docs/FORMAT.md): t (T,), x (T, n, dim),
    norms (T, n), with string/number attributes such as the source file, network and seed."""
    path = Path(path)
    with h5py.File(path, "w") as f:
        f.attrs.update(format="tcnet-trajectories", format_version=FORMAT_VERSION, tcnet_version=__version__, **attrs)
        f.create_dataset("t", data=np.asarray(t, dtype=np.float64))
        f.create_dataset("x", data=np.asarray(x, dtype=np.float64))
        f.create_dataset("norms", data=np.linalg.norm(x, axis=-1))


# --- optimizer state trees ---------------------------------------------------------------------

def _leaf(key: str, value, where: str):
    """(kind, numpy value) of one optimizer-state entry."""
    if value is None:
        return "none", h5py.Empty("f8")
    if isinstance(value, str):
        return "str", value
    if isinstance(value, (bool, np.bool_)):
        return "bool", np.bool_(value)
    if isinstance(value, numbers.Integral):
        return "int", np.int64(value)
    if isinstance(value, numbers.Real):
        return "float", np.float64(value)
    if isinstance(value, np.ndarray) and (np.issubdtype(value.dtype, np.number) or value.dtype == bool):
        return "array", value
    if isinstance(value, (list, tuple)):
        a = np.asarray(value)
        if a.dtype != object and (np.issubdtype(a.dtype, np.number) or a.dtype == bool):
            return "list", a
    raise StoreError(f"{where}: cannot store optimizer state {key!r} of type {type(value).__name__} "
                     "(allowed: numpy arrays, numbers, strings, None, lists of numbers, dicts of these)")


def _put(group: h5py.Group, name: str, kind: str, value) -> None:
    """Write a dataset, in place when shape and dtype allow (so repeated flushes do not grow the file)."""
    old = group.get(name)
    if isinstance(old, h5py.Dataset) and old.attrs.get("kind") == kind:
        if kind == "none" or (kind == "str" and old.asstr()[()] == value):
            return
        a = np.asarray(value)
        if kind != "str" and old.shape == a.shape and old.dtype == a.dtype:
            old[()] = a
            return
    if old is not None:
        del group[name]
    group.create_dataset(name, data=value).attrs["kind"] = kind


def _write_tree(group: h5py.Group, tree: dict, where: str) -> None:
    for name in [k for k in group if k not in tree]:
        del group[name]
    for key, value in tree.items():
        name = _h5name(key, "optimizer state key", Path(where))
        if isinstance(value, dict):
            if name in group and not isinstance(group[name], h5py.Group):
                del group[name]
            _write_tree(group.require_group(name), value, where)
        else:
            _put(group, name, *_leaf(key, value, where))


def _read_tree(group: h5py.Group) -> dict:
    out = {}
    for key, obj in group.items():
        if isinstance(obj, h5py.Group):
            out[key] = _read_tree(obj)
            continue
        kind = _text(obj.attrs.get("kind", "array"))
        if kind == "none":
            out[key] = None
        elif kind == "str":
            out[key] = obj.asstr()[()]
        elif kind == "bool":
            out[key] = bool(obj[()])
        elif kind == "int":
            out[key] = int(obj[()])
        elif kind == "float":
            out[key] = float(obj[()])
        elif kind == "list":
            out[key] = obj[()].tolist()
        else:
            out[key] = np.array(obj[()])
    return out


# --- runs --------------------------------------------------------------------------------------

class RunWriter:
    """Recorder for `tcnet.run` that writes the run to /runs/<run_id> of an HDF5 file.

    `run_id` defaults to the next free 'run-NNNN'. Steps are appended every `flush_steps` steps or
    `flush_seconds` seconds, whichever comes first (checked at each step), with the checkpoint of
    the last appended step. `resume_from=k` continues the existing run `run_id` after its
    checkpoint step k (see `resume`).

    Each flush commits in two phases so that a kill at any moment leaves a consistent run:
    (1) the new history rows go past the committed length `rows`, and the checkpoint goes to the
    checkpoint slot (0 or 1) not in use; the file is flushed. (2) the run attributes `rows` and
    `checkpoint` (the slot) are modified in place. Readers see only the committed rows and slot.
    """

    def __init__(self, path, run_id: str | None = None, *, flush_steps: int = 50,
                 flush_seconds: float = 5.0, resume_from: int | None = None):
        self.flush_steps = integer("RunWriter", "flush_steps", flush_steps, low=1)
        self.flush_seconds = positive("RunWriter", "flush_seconds", flush_seconds)
        if resume_from is not None and run_id is None:
            raise ConfigError("RunWriter: resume_from needs the run_id of the run to continue")
        self.path = Path(path)
        self.run_id = run_id
        self.resume_from = resume_from
        self._lock = _WriteLock(self.path)
        self._buffer: list = []
        self._flushed_at = 0.0
        self._warned = False

    # Recorder protocol
    def start(self, spec: RunSpec, dynamics: Dynamics) -> None:
        if self.run_id is not None:
            _h5name(self.run_id, "run", self.path)
        self._lock.acquire(_owner(self.run_id))
        try:
            with _writing(self.path, FINAL_WAIT) as f:
                runs = f["runs"] if "runs" in f else f.create_group("runs", track_order=True)
                if self.resume_from is None:
                    self._create(runs, spec, dynamics)
                else:
                    self._reopen(runs)
            self._lock.describe(_owner(self.run_id))
        except BaseException:
            self._lock.release()
            raise
        self._buffer.clear()
        self._flushed_at = time.monotonic()

    def step(self, step) -> None:
        self._buffer.append(step)
        if len(self._buffer) >= self.flush_steps or time.monotonic() - self._flushed_at >= self.flush_seconds:
            self.flush(wait=FLUSH_WAIT, must=False)

    def finish(self, result, final: Dynamics) -> None:
        status = "non-finite" if result.status == "non-finite" else "finished"
        try:
            with _writing(self.path, FINAL_WAIT) as f:
                self._commit(f, final=final, attrs=dict(
                    status=status, message=result.message, optimizer_status=result.status,
                    evaluations=np.int64(result.evaluations), ended=_now()))
        finally:
            self._lock.release()

    def fail(self, error: BaseException) -> None:
        """Record the steps so far and mark the run interrupted (KeyboardInterrupt) or failed."""
        status = "interrupted" if isinstance(error, KeyboardInterrupt) else "failed"
        text = _one_line(f"{type(error).__name__}: {error}" if str(error) else type(error).__name__)
        try:
            with _writing(self.path, FINAL_WAIT) as f:
                self._commit(f, attrs=dict(status=status, message=text, ended=_now()))
        except Exception as err:  # the optimizer's error is re-raised by tcnet.run; do not mask it
            warnings.warn(f"{self.path}: could not record that run {self.run_id!r} {status}: {err}", stacklevel=2)
        finally:
            self._lock.release()

    def flush(self, wait: float | None = None, must: bool = True) -> None:
        """Append the buffered steps and their checkpoint now. A file held open by another process
        is retried for `wait` seconds; then, unless `must`, the steps stay buffered for the next flush."""
        if not self._buffer:
            return
        try:
            with _writing(self.path, wait=wait) as f:
                self._commit(f)
        except FileBusyError as err:
            if must:
                raise
            if not self._warned:
                warnings.warn(f"{err}; keeping {len(self._buffer)} steps in memory until the next flush", stacklevel=2)
                self._warned = True
            return
        self._flushed_at = time.monotonic()

    # writing
    def _create(self, runs: h5py.Group, spec: RunSpec, dynamics: Dynamics) -> None:
        if self.run_id is None:
            n = len(runs) + 1
            while f"run-{n:04d}" in runs:
                n += 1
            self.run_id = f"run-{n:04d}"
        elif self.run_id in runs:
            raise StoreError(f"{self.path}: run {self.run_id!r} exists already (choose another run_id, or "
                             "resume it with tcnet.store.resume)")
        g = runs.create_group(self.run_id)
        g.attrs.update(config=json.dumps(spec.as_dict(), sort_keys=True), status="running", message="",
                       writer=f"{socket.gethostname()}:{os.getpid()}", tcnet_version=__version__,
                       started=_now(), rows=np.int64(0), checkpoint=np.int64(-1))
        _write_network(g.create_group("params").create_group("initial", track_order=True), dynamics, self.path)
        h = g.create_group("history")
        for name, dtype in HISTORY_COLUMNS.items():
            h.create_dataset(name, shape=(0,), maxshape=(None,), dtype=dtype, chunks=(CHUNK,))
        terms = h.create_group("terms", track_order=True)
        for label in dict.fromkeys(t.get("label") or t["name"] for t in spec.loss):
            _column(terms, _h5name(label, "loss term label", self.path), 0)
        h.create_group("extra", track_order=True)
        c = g.create_group("checkpoint")
        for slot in ("0", "1"):
            c.create_group(slot)

    def _reopen(self, runs: h5py.Group) -> None:
        if self.run_id not in runs:
            raise StoreError(f"{self.path}: no run {self.run_id!r} to resume (runs: {', '.join(runs) or 'none'})")
        g = runs[self.run_id]
        status = _text(g.attrs.get("status", ""))
        if status not in ("running", "interrupted", "failed"):
            raise StoreError(f"{self.path}: run {self.run_id!r} cannot be resumed (expected status interrupted "
                             f"or failed, found {status})")
        c = _checkpoint_group(g)
        found = "none" if c is None else int(c.attrs["step"])
        if found != self.resume_from:
            raise StoreError(f"{self.path}: run {self.run_id!r} checkpoint moved (expected step "
                             f"{self.resume_from}, found {found})")
        rows = int(g.attrs["rows"])
        for ds in _history_datasets(g["history"]):
            ds.resize((rows,))  # drop rows of an uncommitted flush
        resumed = list(g.attrs.get("resumed_at", [])) + [self.resume_from]
        g.attrs.update(status="running", message="", writer=f"{socket.gethostname()}:{os.getpid()}",
                       resumed_at=np.array(resumed, dtype=np.int64))

    def _commit(self, f: h5py.File, final: Dynamics | None = None, attrs: dict | None = None) -> None:
        """Write the buffered steps (and the final network, the closing attributes) in the two
        phases described in the class docstring."""
        g = f["runs"][self.run_id]
        steps, h = self._buffer, g["history"]
        rows, slot = int(g.attrs["rows"]), int(g.attrs["checkpoint"])
        if steps:
            n = rows + len(steps)
            for name in HISTORY_COLUMNS:
                h[name].resize((n,))
                h[name][rows:n] = [getattr(s, name) for s in steps]
            for sub in ("terms", "extra"):
                new = [k for s in steps for k in getattr(s, sub) if k not in h[sub]]
                for key in dict.fromkeys(new):
                    _column(h[sub], _h5name(key, f"{sub} key", self.path), rows)
                for key, ds in h[sub].items():
                    ds.resize((n,))
                    ds[rows:n] = [float(getattr(s, sub).get(key, np.nan)) for s in steps]
            last, slot = steps[-1], (1 - slot if slot >= 0 else 0)
            c = g["checkpoint"][str(slot)]
            c.attrs["step"] = np.int64(last.step)
            c.attrs["elapsed"] = np.float64(last.wall_time)
            _put(c, "x", "array", np.asarray(last.x, dtype=np.float64))
            _write_tree(c.require_group("state"), last.state, f"{self.path}: run {self.run_id!r}")
        if final is not None:
            if "final" in g["params"]:
                del g["params/final"]
            _write_network(g["params"].create_group("final", track_order=True), final, self.path)
        f.flush()  # phase 1 is on disk before anything refers to it
        if steps:
            g.attrs.modify("rows", np.int64(n))
            g.attrs.modify("checkpoint", np.int64(slot))
        if attrs:
            f.flush()
            g.attrs.update(attrs)
        self._buffer = []


def _column(group: h5py.Group, name: str, rows: int) -> None:
    """A float64 history column of `rows` NaNs that grows in chunks."""
    group.create_dataset(name, shape=(rows,), maxshape=(None,), dtype="float64", chunks=(CHUNK,), fillvalue=np.nan)


def _checkpoint_group(g: h5py.Group) -> h5py.Group | None:
    """The committed checkpoint slot of a run group, or None before the first flush."""
    slot = int(g.attrs.get("checkpoint", -1))
    return None if slot < 0 else g["checkpoint"][str(slot)]


def _history_datasets(h: h5py.Group) -> list:
    return [h[name] for name in HISTORY_COLUMNS] + [h[s][k] for s in ("terms", "extra") for k in h[s]]


@dataclass(frozen=True)
class RunRecord:
    """A run as read back: spec, status, history columns, networks and checkpoint."""

    path: Path
    run_id: str
    spec: dict
    status: str
    message: str
    attrs: dict
    history: dict
    initial_data: NetworkData
    final_data: NetworkData | None
    checkpoint: Checkpoint | None
    plugins: Registry | None = field(default=None, repr=False, compare=False)

    @property
    def initial(self) -> Dynamics:
        return self.initial_data.build(self.plugins)

    @property
    def final(self) -> Dynamics | None:
        """The final network (None for a run that did not finish)."""
        return None if self.final_data is None else self.final_data.build(self.plugins)

    @property
    def steps(self) -> int:
        """Number of recorded history rows."""
        return len(self.history["step"])


def list_runs(path) -> list[str]:
    """Run ids in the order they were created."""
    with _reading(path) as f:
        return list(f.get("runs", {}))


def read_run(path, run_id: str, *, plugins: Registry | None = None) -> RunRecord:
    """Everything stored about one run (its committed history rows and checkpoint). A run recorded
    as running whose writer no longer holds the file's writer lock was killed; its status reads
    "interrupted"."""
    path = Path(path)
    with _reading(path) as f:
        runs = f.get("runs", {})
        if run_id not in runs:
            raise StoreError(f"{path}: no run {run_id!r} (runs: {', '.join(runs) or 'none'})")
        g = runs[run_id]
        where = f"{path}: run {run_id!r}"
        need = ("config", "status", "rows", "checkpoint")
        if any(k not in g.attrs for k in need) or "history" not in g or "params/initial" not in g:
            raise StoreError(f"{where}: malformed run (expected attributes {', '.join(need)}, groups history "
                             f"and params/initial; found attributes {sorted(g.attrs)}, members {sorted(g)})")
        rows = int(g.attrs["rows"])
        columns = {name: g["history"][name] for name in HISTORY_COLUMNS}
        for sub in ("terms", "extra"):
            columns.update({f"{sub}/{k}": ds for k, ds in g["history"][sub].items()})
        short = {k: ds.shape[0] for k, ds in columns.items() if ds.shape[0] < rows}
        if short:
            raise StoreError(f"{where}: malformed history (expected {rows} rows in every column, found {short})")
        history = {k: ds[:rows] for k, ds in columns.items()}
        attrs = {k: (_text(v) if isinstance(v, (str, bytes)) else v) for k, v in g.attrs.items() if k != "config"}
        c = _checkpoint_group(g)
        checkpoint = None if c is None else Checkpoint(
            int(c.attrs["step"]), np.array(c["x"][()], dtype=np.float64), _read_tree(c["state"]),
            float(c.attrs["elapsed"]))
        initial = _read_network(g["params/initial"], f"{where} initial network")
        final = None
        if attrs["status"] in FINISHED:
            final = _read_network(g["params/final"], f"{where} final network")
        spec = json.loads(_text(g.attrs["config"]))
    status, message = attrs["status"], attrs.get("message", "")
    if status == "running":
        owner = _lock_owner(path.with_name(path.name + ".lock"))
        if owner is None or owner.get("run", run_id) != run_id:
            status = "interrupted"
            message = (f"writer {attrs.get('writer', '?')} stopped without closing the run (killed or "
                       "crashed); the history holds the steps up to its last flush")
    return RunRecord(path, run_id, spec, status, message, attrs, history, initial, final, checkpoint, plugins)


def resume(path, run_id: str, progress: bool = False, *, plugins: Registry | None = None,
           flush_steps: int = 50, flush_seconds: float = 5.0) -> RunResult:
    """Continue an interrupted or failed run from its checkpoint, appending to the same history.

    Returns tcnet.run's result for the continuation (its in-memory history holds the new steps
    only; `read_run` gives the whole). Exactness is the optimizer's: Adam/SGD continue bitwise,
    L-BFGS restarts its curvature memory (see tcnet/optim.py).
    """
    plugins = plugins or default_registry()
    record = read_run(path, run_id, plugins=plugins)
    if record.status not in ("interrupted", "failed"):
        raise StoreError(f"{record.path}: run {run_id!r} cannot be resumed (expected status interrupted "
                         f"or failed, found {record.status})")
    if record.checkpoint is None:
        raise StoreError(f"{record.path}: run {run_id!r} has no checkpoint (it stopped before its first "
                         "flush); start it again")
    writer = RunWriter(path, run_id, flush_steps=flush_steps, flush_seconds=flush_seconds,
                       resume_from=record.checkpoint.step)
    return run(record.spec, recorders=[writer], progress=progress, plugins=plugins,
               dynamics=record.initial, resume=record.checkpoint)


# --- comparing runs ----------------------------------------------------------------------------

def flatten_spec(spec: dict) -> dict:
    """Dotted keys of a run spec; loss terms are keyed by their label (default: name), e.g.
    'dynamics.N', 'loss.stability.weight', 'optimizer.stages.1.max_iter'."""
    out = {}

    def walk(prefix, value):
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}.{k}", v)
        elif isinstance(value, list) and value:
            for i, v in enumerate(value):
                walk(f"{prefix}.{i}", v)
        else:
            out[prefix] = value

    walk("dynamics", spec.get("dynamics", {}))
    for term in spec.get("loss", []):
        walk(f"loss.{term.get('label') or term.get('name')}", {k: v for k, v in term.items() if k != "label"})
    walk("optimizer", spec.get("optimizer", {}))
    return out


def compare_table(paths, *, plugins: Registry | None = None) -> list[dict]:
    """One row per run of the given files: file, run, status, the spec keys whose values differ
    between the runs, final loss and terms, iterations (last step number), evaluations (of the
    session that ended the run), wall time, and the final network's summary() entries
    ('final.<key>') where its plugin is installed. Every row has every column (None if absent)."""
    plugins = plugins or default_registry()
    records = [read_run(p, r, plugins=plugins) for p in paths for r in list_runs(p)]
    flat = [flatten_spec(r.spec) for r in records]
    keys = list(dict.fromkeys(k for f in flat for k in f))
    missing = object()
    differ = [k for k in keys if len({json.dumps(f.get(k, missing), sort_keys=True, default=str) for f in flat}) > 1]
    rows = []
    for rec, spec in zip(records, flat):
        h = rec.history
        last = (lambda key: float(h[key][-1])) if rec.steps else (lambda key: None)
        row = {"file": str(rec.path), "run": rec.run_id, "status": rec.status}
        row.update({k: spec.get(k) for k in differ})
        row["loss"] = last("loss")
        row.update({f"term.{k[6:]}": last(k) for k in h if k.startswith("terms/")})
        row["iterations"] = int(h["step"][-1]) if rec.steps else 0
        row["evaluations"] = None if "evaluations" not in rec.attrs else int(rec.attrs["evaluations"])
        row["wall_time"] = last("wall_time")
        if rec.final_data is not None and rec.final_data.dynamics in plugins.entries["dynamics"]:
            row.update({f"final.{k}": v for k, v in rec.final.summary().items()})
        rows.append(row)
    columns = list(dict.fromkeys(k for row in rows for k in row))
    return [{c: row.get(c) for c in columns} for row in rows]


def group_rows(rows: list[dict]) -> list[dict]:
    """Repeats pooled: rows of `compare_table` that differ only in a seed (a spec key ending in
    '.seed') form one group, keyed by the other differing spec keys. Each group gives n (runs),
    finished (runs with status 'finished'), and for every numeric column its mean and sample
    standard deviation over the group ('<column>.std'; None for n = 1)."""
    if not rows:
        return []
    fixed = {"file", "run", "status"}
    spec_keys = [c for c in rows[0] if "." in c and c.split(".")[0] in ("dynamics", "loss", "optimizer")]
    group_keys = [c for c in spec_keys if not c.endswith(".seed")]
    metrics = [c for c in rows[0] if c not in fixed and c not in spec_keys
               and any(isinstance(r[c], (int, float)) and not isinstance(r[c], bool) for r in rows)]
    groups: dict[str, list[dict]] = {}
    for row in rows:
        groups.setdefault(json.dumps([row[k] for k in group_keys], default=str), []).append(row)
    out = []
    for members in groups.values():
        g = {k: members[0][k] for k in group_keys}
        g["n"] = len(members)
        g["finished"] = sum(m["status"] == "finished" for m in members)
        for c in metrics:
            values = np.array([m[c] for m in members if m[c] is not None], dtype=float)
            g[c] = float(values.mean()) if values.size else None
            g[f"{c}.std"] = float(values.std(ddof=1)) if values.size > 1 else None
        out.append(g)
    return out


def table_csv(rows: list[dict]) -> str:
    """The rows of compare_table as CSV text (full float precision)."""
    buf = io.StringIO()
    if rows:
        w = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
        w.writeheader()
        w.writerows({k: ("" if v is None else v) for k, v in row.items()} for row in rows)
    return buf.getvalue()
