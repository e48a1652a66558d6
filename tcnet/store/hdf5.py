"""Checksummed HDF5 files: opening one (signature and root checks, waiting for another process's
HDF5 lock), writing what HDF5 checksums, and turning a failed checksum into one StoreError naming
the damaged object (docs/FORMAT.md, "Checksums").

Files are written in HDF5 1.10's formats, whose metadata carries checksums; datasets are made by
`create_dataset` (fletcher32 on every chunked array, scalars inside their checksummed header) and
string attributes by `set_attrs` (fixed-length, in the header too). HDF5 verifies every checksum as
it reads. Every module of tcnet.store reads through `reading` and writes through `writing` (a
writer holding the file's `WriteLock`); other formats (a plugin's own too) through `new_h5` and
`read_h5`. The waits are read here, so patch them on this module.

Every array dataset written whole also gets its digest (tcnet.store.digests), which readers check,
so that a zeroed block, checksum and all, cannot pass as data. A new file is made in memory and
written out whole (`new_h5`, and a new store's first bytes in `writing`): a full device fails the
write cleanly, before the file exists, instead of failing HDF5 halfway through its own writes (which
ends in pages of errors, a crash, and chunks that were never written reading as zeros).
"""
import ctypes
import fcntl
import io
import os
import time
from contextlib import contextmanager
from pathlib import Path

import h5py
import numpy as np

from tcnet.store import superblock
from tcnet.store.atomic import check_new, complete, full_disk, put_bytes, write_bytes
from tcnet.store.atomic import reserve as reserve_space
from tcnet.store.digests import check_all, has_digest, stamp
from tcnet.store.errors import FULL, FileBusyError, StoreError, one_line
from tcnet.store.format import FORMAT, FORMAT_VERSION, H5_VERSION, as_text, check_root, keeps_digests
from tcnet.store.identity import canonical, use
from tcnet.store.locks import cover
from tcnet.version import __version__

# HDF5 library version bounds (docs/FORMAT.md, "Checksums"): objects are written in HDF5 1.10's formats,
# the oldest with every metadata block checksummed (chunk indexes included); a file is created with
# the superblock of 1.8 (version 2: checksummed, and without the status flags of version 3, which a
# killed writer leaves set so that nobody can open the file again until `h5clear`).
LIBVER = ("v110", "v110")
CREATE_LIBVER = ("v108", "v110")
OPEN_WAIT = 10.0  # seconds to wait for another process's HDF5 lock when reading or saving a network
FLUSH_WAIT = 0.5  # ... at a periodic flush (then the steps stay buffered until the next one)
FINAL_WAIT = 60.0  # ... when a run starts, finishes or fails
_SIGNATURE = b"\x89HDF\r\n\x1a\n"
RESERVE_MARGIN = 256 * 1024  # bytes reserved beyond a write's data for HDF5's metadata (headers, B-trees, heaps)


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
    """h5py.File(path, mode) for writing ("w" creates the file, "a" appends), retrying while another
    process holds the HDF5 file lock (a writer mid-flush, a reader); errors become one-line
    StoreErrors. A file whose last writer was killed mid-flush gets its repaired end of allocation
    first (`tcnet.store.superblock`; the caller holds the writer lock)."""
    def open_file():
        if mode == "w":
            h5py.File(path, "w", libver=CREATE_LIBVER).close()
        else:
            _repair(path)
        return h5py.File(path, "a", libver=LIBVER)

    return _retrying(path, open_file, wait)


def _repair(path: Path) -> None:
    fd = os.open(path, os.O_RDWR)
    try:
        superblock.repair(fd)
    finally:
        os.close(fd)


@contextmanager
def _open_read(path: Path, wait: float | None):
    """h5py.File(path, "r"), retrying as `_open_h5` does; a file whose last writer was killed
    mid-flush is read as its repair would leave it (`superblock.RepairedView`), under HDF5's shared
    lock, without writing to it."""
    fd = os.open(path, os.O_RDONLY)
    try:
        def open_file():
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)  # no writer is in the file while it is read
            sb = superblock.superblock_of(fd)  # as the last writer left it
            if sb is None or sb.repaired_eoa is None:
                return h5py.File(path, "r")
            return h5py.File(superblock.RepairedView(fd, sb), "r")

        f = _retrying(path, open_file, wait)
        try:
            yield f
        finally:
            f.close()
    finally:
        os.close(fd)  # (and with it the shared lock)


def _retrying(path: Path, open_file, wait: float | None) -> h5py.File:
    """`open_file()`, retried while another process holds the HDF5 file lock, for `wait` seconds
    (default OPEN_WAIT); other errors become one-line StoreErrors."""
    wait = OPEN_WAIT if wait is None else wait
    deadline = time.monotonic() + wait
    while True:
        try:
            return open_file()
        except OSError as err:
            locked = isinstance(err, BlockingIOError) or "unable to lock file" in str(err)
            if not locked:
                if not path.exists():
                    raise StoreError(f"{path}: cannot create the file ({one_line(err)})") from None
                _check_signature(path)
                raise StoreError(f"{path}: truncated or corrupt HDF5 file (expected a readable HDF5 "
                                 f"file, found: {one_line(err)})") from None
            if time.monotonic() >= deadline:
                raise FileBusyError(f"{path}: the file is held open by another process (HDF5 file "
                                    f"lock, waited {wait:g} s); close it there and retry") from None
            time.sleep(0.05)


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
                          f"{one_line(err)}); the file is corrupt (restore it from a copy)")
    return StoreError(f"{path}: corrupt or malformed tcnet file (expected the layout of docs/FORMAT.md, "
                      f"found: {one_line(err)})")


@contextmanager
def reading(path, wait: float | None = None, fmt: str = FORMAT):
    """The open file of format `fmt` (a store by default), validated, for reading; HDF5 errors
    inside (a failed checksum, a broken structure) become one-line StoreErrors naming the damaged
    object."""
    if not str(path):  # Path("") is ".", which would be reported as a directory
        raise StoreError("'': not a file name (expected a path to a tcnet HDF5 file)")
    path = Path(path)
    _check_signature(path)
    with _open_read(path, wait) as f:
        use(path)
        try:
            check_root(path, f, fmt)
            yield f
        except _HDF5_ERRORS as err:
            raise _corrupt(path, f, err) from None


@contextmanager
def new_h5(path, fmt: str, force: bool = False, *, keep=()):
    """A new HDF5 file of format `fmt`, open for writing, with root attributes format=`fmt`,
    format_version (H5_VERSION) and tcnet_version. Written with `set_attrs` and `create_dataset`,
    everything in it is checksummed and every array digested. It is made in memory and, when the
    block ends, written out whole and read back as `read_h5` reads it before it is renamed into
    place (`write_bytes`: the file is complete or absent, a full device one DiskFullError; `force`
    and `keep` as in `new_file`)."""
    path = check_new(path, force, keep)
    buffer = io.BytesIO()
    with _open_h5(buffer, "w", 0) as f:
        _root(f, fmt, H5_VERSION)
        yield f
    write_bytes(path, buffer.getvalue(), force, keep=keep, verify=lambda partial: _verify(partial, fmt))


def _verify(path: Path, fmt: str) -> None:
    """Read the file of format `fmt` back whole, its digests checked (as `read_h5` does)."""
    with read_h5(path, fmt):
        pass


def _image(fmt: str, version: int) -> bytes:
    """The bytes of a new, empty file of format `fmt` and format_version `version`."""
    buffer = io.BytesIO()
    with _open_h5(buffer, "w", 0) as f:
        _root(f, fmt, version)
    return buffer.getvalue()


@contextmanager
def read_h5(path, fmt: str):
    """An HDF5 file of format `fmt` (`new_h5`), open for reading: a file that is missing, not
    HDF5, of another format or an unknown format_version is refused in one line (StoreError),
    and so is one whose checksums fail or whose data does not match its digests (every dataset is
    read and checked on opening), naming the damaged object."""
    with reading(path, None, fmt) as f:
        check_all(f)
        yield f


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
    value = str(value)  # a str subclass (a tcnet.status.Status) as the plain word it is
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
    data. An array given with its `data` also gets its digest (`tcnet.store.digests.stamp`; in a
    store of a version before digests, none: `keeps_digests`), which a zeroed chunk cannot match;
    one made by `shape` alone (a history column) gets its digests as it is committed."""
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
    ds = group.create_dataset(name, shape=shape, dtype=dtype if data is None else data.dtype, data=data,
                              maxshape=maxshape, chunks=chunks or True, fletcher32=True, fillvalue=fillvalue,
                              compression=compression)
    if data is not None and has_digest(data) and keeps_digests(group.file):
        stamp(ds, data)
    return ds


def index_group(parent: h5py.Group, name: str) -> h5py.Group:
    """The group `name` of `parent` (created if missing) that indexes a file's runs or networks:
    members in creation order, their links in HDF5's dense storage from the first one.

    In HDF5's default compact storage the ninth member moves every link into a new fractal heap
    and B-trees, written in the same flush as the group's header that points to them; a writer
    killed inside that flush leaves the header pointing to a heap never written, and every member
    is lost ('wrong fractal heap header signature'). Dense from the start, a new member goes into
    blocks that exist. h5py does not expose the setting (H5Pset_link_phase_change), so it is set
    through the HDF5 library h5py itself runs on; where that is not possible the group is created
    as h5py would create it."""
    if name in parent:
        return parent[name]
    gcpl = h5py.h5p.create(h5py.h5p.GROUP_CREATE)
    gcpl.set_link_creation_order(h5py.h5p.CRT_ORDER_TRACKED | h5py.h5p.CRT_ORDER_INDEXED)
    try:
        phase_change = ctypes.CDLL(h5py.h5p.__file__).H5Pset_link_phase_change  # in h5py's own libhdf5
        phase_change.argtypes = [ctypes.c_int64, ctypes.c_uint, ctypes.c_uint]
        phase_change(gcpl.id, 0, 0)  # at most 0 compact links, dense down to 0
    except (OSError, AttributeError):
        pass
    return h5py.Group(h5py.h5g.create(parent.id, name.encode(), gcpl=gcpl))


@contextmanager
def writing(path: Path, wait: float | None = None, reserve: int = 0):
    """The store file open for appending, once it has been checked that it can grow by
    `reserve` bytes plus RESERVE_MARGIN (`tcnet.store.atomic.reserve`: a full device fails
    there, cleanly, instead of in the middle of HDF5's own writes, after which HDF5 can neither
    finish nor close the file). A missing file is first made complete (root attributes) under a
    temporary name and renamed into place (`complete`; through a symbolic link, dangling or not,
    onto its target), and the caller's writer lock then covers it under any name
    (`tcnet.store.locks.cover`). The caller holds the writer lock.

    The space is given back before HDF5 opens the file because a file that HDF5 opens longer than
    its own end of allocation is left unreadable by a kill during a write ('len not positive after
    adjustment for EOA'; the killed-study-driver test failed 4 of 6 times under load with the space
    kept, 0 of 8 with it given back)."""
    if not path.exists():
        try:
            with complete(canonical(path)) as partial:
                put_bytes(partial, _image(FORMAT, FORMAT_VERSION))
        except OSError as err:
            if err.errno not in FULL:
                raise
            raise full_disk(f"{path}: cannot create the file ({err.strerror})", err) from None
    cover(path)
    use(path)
    _check_signature(path)
    reserve_space(path, reserve + RESERVE_MARGIN)
    f = _open_h5(path, "a", wait)
    try:
        check_root(path, f)
        yield f
    finally:
        f.close()


def file_info(path) -> dict:
    """The root attributes of a store file: format, format_version, tcnet_version."""
    with reading(path) as f:
        return {k: (as_text(v) if isinstance(v, (str, bytes)) else int(v)) for k, v in f.attrs.items()}
