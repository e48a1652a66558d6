"""Files complete or absent: the one way tcnet creates a file (a figure, a CSV table, a JSON
report, a trajectory or data file). The whole file is written to a temporary beside its target
(same directory, so the rename stays on one file system), synced to disk and renamed onto the
target, so no reader ever sees half a file; a temporary left by a killed process is removed by the
next write of the same target. Nothing here knows HDF5: `tcnet.store.hdf5` builds on it.
"""
import glob
import os
from contextlib import contextmanager
from pathlib import Path

from tcnet.store.errors import FileBusyError, StoreError
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


@contextmanager
def complete(path: Path):
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
    owner = writer_of(path)
    if owner is not None and path.exists():
        raise FileBusyError(f"{path}: another process is writing this file ({describe_owner(owner)}); "
                            "refusing to replace it")
    return path


def _check_place(path: Path, force: bool) -> Path:
    """`path`, if a file may be created there: a file name in an existing directory, not there
    yet or (with `force`) a regular file."""
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
    """The one way tcnet creates a file (a trajectory file, a data set, a figure, a table, a report): yields
    a temporary path to write the whole file to; when the block ends the file is renamed onto
    `path`. An existing `path` is refused unless `force`, and never replaced while a tcnet writer
    holds it (the writer lock, as for stores); a failed write leaves `path` as it was."""
    path = check_new(path, force)
    lock = WriteLock(path)
    lock.acquire(this_writer())
    try:
        _check_place(path, force)  # again: the file may have appeared meanwhile
        with complete(path) as partial:
            yield partial
    finally:
        lock.release()

