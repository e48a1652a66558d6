"""Files complete or absent: the one way tcnet creates a file (a store, a figure, a CSV table, a
JSON report, a trajectory or data file). The whole file is written to a temporary beside its target
(same directory, so the rename stays on one file system), checked, synced to disk and renamed onto
the target, so no reader ever sees half a file; a temporary left by a killed process is removed by
the next write of the same target. A file is its target through symbolic links (a link, dangling
or not, is written through, never replaced), and it is never replaced while any tcnet process
writes it under any name (tcnet.store.locks), while any process has it open in HDF5, or when the
running command reads or writes it itself (tcnet.store.identity). A full device or file size
limit is one DiskFullError, with the previous file (or none) left as it was. Nothing here knows
HDF5: `tcnet.store.hdf5` builds on it.
"""
import errno
import fcntl
import glob
import os
from contextlib import contextmanager
from pathlib import Path

from tcnet.store.errors import FULL, DiskFullError, FileBusyError, StoreError
from tcnet.store.identity import canonical, same_file, used
from tcnet.store.locks import WriteLock, describe_owner, this_writer, writer_of


def _temporary(path: Path, pid: int) -> Path:
    """The name `complete` writes `path` under in process `pid`: `.<name>.creating-<pid><suffix>`."""
    return path.with_name(f".{path.name}.creating-{pid}{path.suffix}")


def _alive(pid: int) -> bool:
    """Whether process `pid` exists (on this host: temporaries sit beside their target)."""
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


def full_disk(message: str, err: OSError) -> DiskFullError:
    """A DiskFullError saying `message`; its `reason` is the system's word for `err`."""
    full = DiskFullError(message)
    full.reason = err.strerror
    return full


def reserve(path, nbytes: int) -> None:
    """Check that the file `path` can grow by `nbytes`: allocate them past its end
    (posix_fallocate), then give them back (ftruncate to the old size). A full device or a file
    size limit fails here, cleanly (DiskFullError), before anything is written. (The space is given
    back because a store that HDF5 opens longer than its own end of allocation is left unreadable
    by a kill during a write: see tcnet.store.hdf5.writing.)"""
    fd = os.open(path, os.O_RDWR)
    try:
        size = os.fstat(fd).st_size
        os.posix_fallocate(fd, size, nbytes)
        os.ftruncate(fd, size)
    except OSError as err:
        if err.errno in FULL:
            raise full_disk(f"{path}: cannot grow the file by {nbytes} bytes ({err.strerror})", err) from None
        if err.errno not in (errno.EOPNOTSUPP, errno.EINVAL):  # a file system without fallocate: no check
            raise
    finally:
        os.close(fd)


@contextmanager
def complete(path: Path):
    """A temporary path next to `path` (same directory, same suffix, so a writer that picks its
    format from the name still does); when the block ends it is synced to disk and renamed onto
    `path`, so no reader ever sees a half-written file. If the block raises it is removed and
    `path` is untouched; temporaries of `path` that killed processes left behind are removed first
    (`_remove_stale`). `path` is the canonical target (`tcnet.store.identity.canonical`), and the
    caller holds its writer lock."""
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


def put_bytes(partial: Path, data: bytes) -> None:
    """Write `data` as the whole new file `partial` (a temporary of `complete`), its space
    allocated first, so that a full device fails (OSError) before anything is written."""
    with open(partial, "wb") as fh:
        try:
            os.posix_fallocate(fh.fileno(), 0, max(len(data), 1))
        except OSError as err:
            if err.errno not in (errno.EOPNOTSUPP, errno.EINVAL):  # a file system without fallocate: no check
                raise
        fh.write(data)
        fh.truncate(len(data))


def check_new(path, force: bool = False, keep=()) -> Path:
    """`path` as a Path if tcnet may create it there: its directory exists; it does not exist yet
    or (with `force`) is a regular file that no tcnet process writes or drives runs into and that
    is none of `keep` (the files the command reads or writes) nor a file the running command has
    used. Commands call this on every output path before they compute anything; `new_file` checks
    again when it writes."""
    path = Path(path)
    target = _check_place(path, force)
    for other in keep:
        if other is not None and same_file(path, other):
            raise StoreError(f"{path}: names {other}, which this command reads or writes; refusing to replace "
                             "it (choose another output file)")
    if not target.exists():
        return path
    if used(target):
        raise StoreError(f"{path}: this command reads or writes this file; refusing to replace it (choose "
                         "another output file)")
    for suffix, who in ((".lock", "another process is writing this file"),
                        (".driver.lock", "a study is writing its runs into this file")):
        owner = writer_of(target, suffix)
        if owner is not None:
            raise FileBusyError(f"{path}: {who} ({describe_owner(owner)}); refusing to replace it")
    return path


def _check_place(path: Path, force: bool) -> Path:
    """The canonical target of `path` (its symbolic links resolved), if a file may be created
    there: a file name in an existing directory, not there yet or (with `force`) a regular file."""
    if not str(path) or path.name in ("", ".", ".."):
        raise StoreError(f"{str(path)!r}: not a file name (expected a path to a file)")
    target = canonical(path)
    if not target.parent.is_dir():
        raise StoreError(f"{path}: no directory {target.parent} to create it in")
    if target.is_dir():
        raise StoreError(f"{path}: is a directory (expected a path to a file)")
    if target.exists():
        if not force:
            raise StoreError(f"{path}: exists already; refusing to replace it (--force, or force=True, "
                             "replaces it)")
        if not target.is_file():
            raise StoreError(f"{path}: not a regular file; refusing to replace it")
    return target


@contextmanager
def _closed_everywhere(path: Path, target: Path):
    """While the block runs, no process holds the existing file `target` open in HDF5 (whose file
    lock is a flock on the file itself): this process holds that flock, so a reader opening it
    meanwhile waits, and then finds the new file (FileBusyError if one has it open now)."""
    try:
        fd = os.open(target, os.O_RDONLY)
    except FileNotFoundError:
        yield
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise FileBusyError(f"{path}: the file is open in HDF5 (in this process or another: its HDF5 file "
                                "lock is held); refusing to replace it") from None
        yield
    finally:
        os.close(fd)


@contextmanager
def new_file(path, force: bool = False, *, keep=(), verify=None):
    """The one way tcnet creates a file (a trajectory file, a data set, a figure, a table, a
    report): yields a temporary path to write the whole file to; when the block ends the file is
    checked (`verify(temporary)`, which raises if it is not what was meant to be written) and
    renamed onto `path`'s target (through symbolic links). An existing file is refused unless
    `force`, and never replaced while a tcnet process writes it under any name, while a process
    has it open in HDF5, or when it is one of `keep` or a file the running command used
    (`check_new`); a failed write leaves the file as it was, a full device in one line
    (DiskFullError)."""
    path = check_new(path, force, keep)
    lock = WriteLock(path)
    lock.acquire(this_writer())
    try:
        target = _check_place(path, force)  # again: the file may have appeared meanwhile
        existed = target.exists()
        try:
            with _closed_everywhere(path, target), complete(target) as partial:
                yield partial
                if verify is not None:
                    verify(partial)
        except OSError as err:
            if err.errno not in FULL:
                raise
            kept = "the previous file is kept" if existed else "no file was made"
            raise full_disk(f"{path}: cannot write the file ({err.strerror}); {kept}", err) from None
    finally:
        lock.release()


def write_bytes(path, data: bytes, force: bool = False, *, keep=(), verify=None) -> Path:
    """Create the file `path` holding `data` through `new_file`: its space allocated first
    (`put_bytes`), and read back and compared, then checked by `verify` (as in `new_file`), before
    it is renamed into place, so that what the device did not keep is an error, not a file.
    Returns `path`."""
    def check(partial: Path) -> None:
        if partial.read_bytes() != data:
            raise StoreError(f"{path}: the new file did not read back as written ({len(data)} bytes); "
                             "it was not made")
        if verify is not None:
            verify(partial)

    with new_file(path, force, keep=keep, verify=check) as partial:
        put_bytes(partial, data)
    return Path(path)
