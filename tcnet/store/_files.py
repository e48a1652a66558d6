"""Store files: the format constants, opening a file (signature and root checks, waiting for another
process's HDF5 lock), the one-writer-at-a-time lock, and writing what HDF5 checksums.

Every other module of tcnet.store reads and writes through `_reading` and `_writing` here, and a
writer holds `_WriteLock` for as long as it writes. Files are written in HDF5 1.10's formats, whose
metadata carries checksums; datasets are made by `create_dataset` (fletcher32 on every chunked
array, scalars inside their checksummed header) and string attributes by `set_attrs` (fixed-length,
in the header too). HDF5 verifies every checksum as it reads; `_reading` turns a failure into one
line naming the damaged object (docs/FORMAT.md, "Checksums").
"""
import errno
import fcntl
import glob
import json
import numbers
import os
import socket
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

import h5py
import numpy as np

from tcnet import __version__
from tcnet.optim import NUMERICAL_FAILURES

FORMAT = "tcnet"
FORMAT_VERSION = 2  # 2: strings fixed-length (checksummed with their object); 1: variable-length (FORMAT.md)
READ_VERSIONS = (1, 2)
# HDF5 library version bounds (docs/FORMAT.md, "Checksums"): objects are written in HDF5 1.10's formats,
# the oldest with every metadata block checksummed (chunk indexes included); a file is created with
# the superblock of 1.8 (version 2: checksummed, and without the status flags of version 3, which a
# killed writer leaves set so that nobody can open the file again until `h5clear`).
LIBVER = ("v110", "v110")
CREATE_LIBVER = ("v108", "v110")
HISTORY_COLUMNS = {"step": "int64", "stage": "int64", "loss": "float64", "grad_norm": "float64",
                   "wall_time": "float64"}
CHUNK = 1024  # rows per history chunk
OPEN_WAIT = 10.0  # seconds to wait for another process's HDF5 lock when reading or saving a network
FLUSH_WAIT = 0.5  # ... at a periodic flush (then the steps stay buffered until the next one)
FINAL_WAIT = 60.0  # ... when a run starts, finishes or fails
NETWORK_PARTS = ("initial", "final", "checkpoint")
FINISHED = ("finished", "non-finite", "diverged")  # statuses with a final network
STATUSES = ("running", *FINISHED, "interrupted", "failed")


def ended_status(optimizer_status: str) -> str:
    """The stored status of a run whose optimizer returned `optimizer_status`: "non-finite" and
    "diverged" are kept (the run failed numerically), every other result is "finished"."""
    return optimizer_status if optimizer_status in NUMERICAL_FAILURES else "finished"
_SIGNATURE = b"\x89HDF\r\n\x1a\n"


class StoreError(ValueError):
    """A store file cannot be read or written as asked; the message names the file, what was
    expected and what was found."""


class FileBusyError(StoreError):
    """Another process is writing (or holds open) the file."""


class DiskFullError(StoreError):
    """The file cannot grow: the device is full (ENOSPC), a quota is reached (EDQUOT) or the file
    size limit (EFBIG). Nothing was written: the file holds what it held before."""


_FULL = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)
RESERVE_MARGIN = 256 * 1024  # bytes reserved beyond a write's data for HDF5's metadata (headers, B-trees, heaps)


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
            if mode == "r":
                return h5py.File(path, "r")
            if mode == "w":
                h5py.File(path, "w", libver=CREATE_LIBVER).close()
            return h5py.File(path, "a", libver=LIBVER)
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


def _check_root(path: Path, f: h5py.File, fmt: str = FORMAT) -> None:
    """Fail unless `f` is a file of format `fmt` (a tcnet store by default) of a format_version
    this tcnet reads."""
    found = f.attrs.get("format")
    if found is None or _text(found) != fmt:
        found = "no 'format' attribute" if found is None else f"format={_text(found)!r}"
        kind = "tcnet" if fmt == FORMAT else fmt
        raise StoreError(f"{path}: not a {kind} file (expected root attribute format='{fmt}', found {found})")
    version = f.attrs.get("format_version")
    if version is None or not isinstance(version, numbers.Integral) or int(version) not in READ_VERSIONS:
        version = int(version) if isinstance(version, numbers.Integral) else version
        writer = _text(f.attrs.get("tcnet_version", "unknown"))
        raise StoreError(f"{path}: unknown format_version {version!r} (this tcnet {__version__} reads "
                         f"format_version {' and '.join(map(str, READ_VERSIONS))}; the file was written by "
                         f"tcnet {writer})")


# What h5py raises for a damaged file: OSError for a failed checksum or a broken structure (KeyError
# when it happens while opening a member), RuntimeError for other inconsistencies.
_HDF5_ERRORS = (OSError, KeyError, RuntimeError)


def _damaged(f: h5py.File) -> str | None:
    """The first object of `f` (depth first) whose attributes or data cannot be read back (a failed
    checksum: HDF5 verifies them on every read), or None if every object reads."""
    def readable(obj) -> bool:
        try:
            for key in obj.attrs:
                obj.attrs[key]
            if isinstance(obj, h5py.Dataset) and obj.shape is not None:
                obj[()]
            return True
        except _HDF5_ERRORS:
            return False

    def walk(name, group) -> str | None:
        if not readable(group):
            return name
        try:
            members = list(group)
        except _HDF5_ERRORS:
            return name
        for key in members:
            path = f"{name.rstrip('/')}/{key}"
            try:
                obj = group[key]
            except _HDF5_ERRORS:
                return path
            found = walk(path, obj) if isinstance(obj, h5py.Group) else (None if readable(obj) else path)
            if found:
                return found
        return None

    return walk("/", f)


def _corrupt(path: Path, f: h5py.File, err: Exception) -> StoreError:
    """The one-line error for an HDF5 error while reading `f`: the damaged object it names (found by
    reading every object, `_damaged`), or the layout of docs/FORMAT.md it breaks."""
    where = _damaged(f)
    if where is not None:
        return StoreError(f"{path}: damaged file: {where} cannot be read back intact (HDF5: "
                          f"{_one_line(err)}); the file is corrupt (restore it from a copy)")
    return StoreError(f"{path}: corrupt or malformed tcnet file (expected the layout of docs/FORMAT.md, "
                      f"found: {_one_line(err)})")


@contextmanager
def _reading(path, wait: float | None = None, fmt: str = FORMAT):
    """The open file of format `fmt` (a store by default), validated, for reading; HDF5 errors
    inside (a failed checksum, a broken structure) become one-line StoreErrors naming the damaged
    object."""
    if not str(path):  # Path("") is ".", which would be reported as a directory
        raise StoreError("'': not a file name (expected a path to a tcnet HDF5 file)")
    path = Path(path)
    _check_signature(path)
    f = _open_h5(path, "r", wait)
    try:
        _check_root(path, f, fmt)
        yield f
    except _HDF5_ERRORS as err:
        raise _corrupt(path, f, err) from None
    finally:
        f.close()


def _temporary(path: Path, pid: int) -> Path:
    """The name `_complete` writes `path` under in process `pid`: `.<name>.creating-<pid><suffix>`."""
    return path.with_name(f".{path.name}.creating-{pid}{path.suffix}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _remove_stale(path: Path) -> None:
    """Remove the temporaries of `path` (`_temporary`) left by processes that died while writing it
    (SIGKILL, power loss); those whose process is alive are left alone. Called under the writer
    lock of `path`, so no live tcnet process is writing them."""
    prefix = f".{path.name}.creating-"
    for tmp in path.parent.glob(f"{glob.escape(prefix)}*{glob.escape(path.suffix)}"):
        pid = tmp.name[len(prefix):len(tmp.name) - len(path.suffix)]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            tmp.unlink(missing_ok=True)


@contextmanager
def _complete(path: Path):
    """A temporary path next to `path` (same directory, same suffix, so a writer that picks its
    format from the name still does); when the block ends it is synced to disk and renamed onto
    `path`, so no reader ever sees a half-written file. If the block raises it is removed and
    `path` is untouched; temporaries of `path` that killed processes left behind are removed first
    (`_remove_stale`). The caller holds the writer lock of `path`."""
    _remove_stale(path)
    partial = _temporary(path, os.getpid())
    try:
        yield partial
        fd = os.open(partial, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def check_new(path, force: bool = False) -> Path:
    """`path` as a Path if tcnet may create it there: its directory exists, and it does not exist
    yet or (with `force`) is a regular file no tcnet writer holds. Commands call this on every
    output path before they compute anything; `new_file` checks again when it writes."""
    path = _check_place(Path(path), force)
    owner = _lock_owner(path.with_name(path.name + ".lock"))
    if owner is not None and path.exists():
        raise FileBusyError(f"{path}: another process is writing this file ({_describe(owner)}); "
                            "refusing to replace it")
    return path


def _check_place(path: Path, force: bool) -> Path:
    if not str(path) or path.name in ("", ".", ".."):
        raise StoreError(f"{str(path)!r}: not a file name (expected a path to a file)")
    if not path.parent.is_dir():
        raise StoreError(f"{path}: no directory {path.parent} to create it in")
    if path.is_dir():
        raise StoreError(f"{path}: is a directory (expected a path to a file)")
    if path.exists() or path.is_symlink():
        if not force:
            raise StoreError(f"{path}: exists already; refusing to replace it (--force, or force=True, "
                             "replaces it)")
        if not path.is_file():
            raise StoreError(f"{path}: not a regular file; refusing to replace it")
    return path


@contextmanager
def new_file(path, force: bool = False):
    """The one way tcnet creates a file (a trajectory file, a data set, a figure, a table): yields
    a temporary path to write the whole file to; when the block ends the file is renamed onto
    `path`. An existing `path` is refused unless `force`, and never replaced while a tcnet writer
    holds it (the writer lock, as for stores); a failed write leaves `path` as it was."""
    path = check_new(path, force)
    lock = _WriteLock(path)
    lock.acquire(_owner())
    try:
        _check_place(path, force)  # again: the file may have appeared meanwhile
        with _complete(path) as partial:
            yield partial
    finally:
        lock.release()


@contextmanager
def new_h5(path, fmt: str, force: bool = False):
    """A new HDF5 file of format `fmt` (see `new_file`), open for writing, with root attributes
    format=`fmt`, format_version (FORMAT_VERSION) and tcnet_version. Written with `set_attrs` and
    `create_dataset`, everything in it is checksummed; `read_h5` reads it back."""
    with new_file(path, force) as partial:
        with _open_h5(partial, "w", 0) as f:
            _root(f, fmt, FORMAT_VERSION)
            yield f


def read_h5(path, fmt: str):
    """An HDF5 file of format `fmt` (`new_h5`), open for reading: a file that is missing, not
    HDF5, of another format or an unknown format_version is refused in one line (StoreError),
    and so is one whose checksums fail, naming the damaged object."""
    return _reading(path, None, fmt)


def _root(f: h5py.File, fmt: str, version: int) -> None:
    """The root attributes of a new file of format `fmt` (a store: FORMAT, FORMAT_VERSION)."""
    f.attrs["format_version"] = np.int64(version)  # first: it decides how the strings are stored
    set_attrs(f, format=fmt, tcnet_version=__version__)


# --- writing what HDF5 checksums ---------------------------------------------------------------------

def _string(obj, value: str):
    """`value` as the file of `obj` stores strings: format_version 2 (new stores) fixed-length UTF-8,
    which lives in the object's header and so under its checksum; version 1 (older stores, and the
    other formats: trajectories, data sets) variable-length, which HDF5 keeps in a global heap that
    has no checksum."""
    if int(obj.file.attrs.get("format_version", 1)) < 2:  # (a new root gets it first, then its strings)
        return value
    data = value.encode()
    return np.array(data, dtype=h5py.string_dtype("utf-8", max(len(data), 1)))


def set_attrs(obj, **values) -> None:
    """Set attributes of `obj`; strings as the file stores them (`_string`)."""
    for key, value in values.items():
        obj.attrs[key] = _string(obj, value) if isinstance(value, str) else value


def create_dataset(group: h5py.Group, name: str, data=None, *, shape=None, dtype=None, maxshape=None,
                   chunks=None, fillvalue=None, compression=None) -> h5py.Dataset:
    """A new dataset whose contents HDF5 checksums: an array is chunked (`chunks`, by default h5py's
    choice) with the fletcher32 filter, so a chunk whose checksum fails is refused when read
    (`compression`, e.g. "gzip", is applied before it); a scalar is stored compact, inside its
    object header, under the header's checksum (a string: see `_string`). h5py.Empty stores no
    data."""
    if isinstance(data, str):
        data = _string(group, data)
    if isinstance(data, (str, h5py.Empty)):  # a version 1 string, or nothing
        return group.create_dataset(name, data=data)
    if data is not None:
        data = np.asarray(data, dtype=dtype)
        shape = data.shape
    if shape == ():
        dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        dcpl.set_layout(h5py.h5d.COMPACT)
        space = h5py.h5s.create(h5py.h5s.SCALAR)
        ds = h5py.Dataset(h5py.h5d.create(group.id, name.encode(), h5py.h5t.py_create(data.dtype, logical=True),
                                          space, dcpl=dcpl))
        ds[()] = data
        return ds
    return group.create_dataset(name, shape=shape, dtype=dtype if data is None else data.dtype, data=data,
                                maxshape=maxshape, chunks=chunks or True, fletcher32=True, fillvalue=fillvalue,
                                compression=compression)


def _reserve(path: Path, nbytes: int) -> None:
    """Check that the file can grow by `nbytes` before HDF5 opens it to write: allocate them past
    the end of the file (posix_fallocate), then give them back (ftruncate to the old size).

    A full device or a file size limit then fails here, cleanly (DiskFullError), instead of in the
    middle of HDF5's own writes, after which HDF5 can neither finish nor close the file (it ends in
    pages of errors and a crash). The space is given back before HDF5 opens the file because a file
    that HDF5 opens longer than its own end of allocation is left unreadable by a kill during a
    write ('len not positive after adjustment for EOA'; the killed-study-driver test failed 4 of 6
    times under load with the space kept, 0 of 8 with it given back)."""
    fd = os.open(path, os.O_RDWR)
    try:
        size = os.fstat(fd).st_size
        os.posix_fallocate(fd, size, nbytes)
        os.ftruncate(fd, size)
    except OSError as err:
        if err.errno in _FULL:
            full = DiskFullError(f"{path}: cannot grow the file by {nbytes} bytes ({err.strerror})")
            full.reason = err.strerror
            raise full from None
        if err.errno not in (errno.EOPNOTSUPP, errno.EINVAL):  # a file system without fallocate: no check
            raise
    finally:
        os.close(fd)


@contextmanager
def _writing(path: Path, wait: float | None = None, reserve: int = 0):
    """The store file open for appending, once it has been checked that it can grow by `reserve`
    bytes plus RESERVE_MARGIN (`_reserve`). A missing file is first made complete (root attributes)
    under a temporary name and renamed into place (`_complete`). The caller holds the writer lock."""
    if not path.exists():
        with _complete(path) as partial:
            with _open_h5(partial, "w", wait) as f:
                _root(f, FORMAT, FORMAT_VERSION)
    _check_signature(path)
    _reserve(path, reserve + RESERVE_MARGIN)
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

    def __init__(self, path: Path, suffix: str = ".lock"):
        self.path = path
        self.lockpath = path.with_name(path.name + suffix)
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


@contextmanager
def driver_lock(path):
    """Exclusive right to drive many runs into one file (a study): `flock` on `<file>.driver.lock`
    for as long as the block runs, taken before anything is computed, so a second driver on the
    same file is refused at once rather than after computing everything (FileBusyError). The
    runs themselves are still written one at a time under the writer lock."""
    lock = _WriteLock(Path(path), ".driver.lock")
    lock.acquire(_owner(), wait=0)
    try:
        yield
    finally:
        lock.release()


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


# --- reading what the file says, checked against docs/FORMAT.md ------------------------------------

def _malformed(where: str, expected: str, found) -> StoreError:
    return StoreError(f"{where}: malformed file (expected {expected}, found {found})")


def _int_attr(obj, key: str, where: str, low: int | None = None, high: int | None = None) -> int:
    """The integer attribute `key` of `obj` (a scalar of an integer type) within [low, high]."""
    value = obj.attrs.get(key)
    if value is None or isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise _malformed(where, f"attribute {key!r} to be an integer", repr(value))
    if (low is not None and value < low) or (high is not None and value > high):
        raise _malformed(where, f"attribute {key!r} in [{low}, {'inf' if high is None else high}]", int(value))
    return int(value)


def _real_attr(obj, key: str, where: str) -> float:
    value = obj.attrs.get(key)
    if value is None or isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise _malformed(where, f"attribute {key!r} to be a real number", repr(value))
    return float(value)


def _text_attr(obj, key: str, where: str, default: str | None = None) -> str:
    value = obj.attrs.get(key, default)
    if not isinstance(value, (str, bytes)):
        raise _malformed(where, f"attribute {key!r} to be a string", repr(value))
    try:
        return _text(value)
    except UnicodeDecodeError:
        raise _malformed(where, f"attribute {key!r} to be UTF-8 text", repr(value)) from None


def _json_attr(obj, key: str, where: str) -> dict:
    """The JSON object held by the string attribute `key`."""
    text = _text_attr(obj, key, where)
    try:
        value = json.loads(text)
    except ValueError:
        raise _malformed(where, f"attribute {key!r} to hold JSON", repr(text[:60])) from None
    if not isinstance(value, dict):
        raise _malformed(where, f"attribute {key!r} to hold a JSON object", type(value).__name__)
    return value


def _member(group, key: str, default=None):
    """The member `key` of `group`, or `default` if it has no such link. (h5py's `get` answers the
    default also for a member that exists but cannot be opened, e.g. a failed checksum; here that
    raises, and `_reading` names the damaged object.)"""
    return group[key] if key in group else default


def _dataset(group, key: str, where: str, ndim: int | None = None, kinds: str = "iuf") -> h5py.Dataset:
    """The member `key` of `group`, which must be a dataset of a numeric dtype (numpy kinds
    `kinds`: i signed, u unsigned integers, f floats, b bool) and, if given, of rank `ndim`."""
    ds = _member(group, key)
    if not isinstance(ds, h5py.Dataset):
        raise _malformed(where, f"a dataset {key!r}", "nothing" if ds is None else "a group")
    if ds.dtype.kind not in kinds or (ndim is not None and ds.ndim != ndim):
        rank = "" if ndim is None else f"{ndim}-D "
        raise _malformed(where, f"{key!r} to be a {rank}numeric dataset", f"dtype {ds.dtype}, shape {ds.shape}")
    return ds


def _group(group, key: str, where: str):
    g = _member(group, key)
    if not isinstance(g, h5py.Group):
        raise _malformed(where, f"a group {key!r}", "nothing" if g is None else "a dataset")
    return g


def _has(group, name: str) -> bool:
    """`name in group`, and False for a name no HDF5 object can have: text that is not UTF-8 (a
    command-line argument of undecodable bytes), which h5py cannot even look up."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return name in group


def _h5name(name, what: str, path: Path) -> str:
    if not isinstance(name, str) or not name or "/" in name or name in (".", ".."):
        raise StoreError(f"{path}: {what} name must be a non-empty string without '/', got {name!r}")
    return name
