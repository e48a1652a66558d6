"""Locks: at most one tcnet process writes a file, and at most one drives many runs into it.

A lock belongs to the file, not to the spelling of its path (tcnet.store.identity): it is a `flock`
on the sidecar of the file's canonical path (`<file>.lock`, `<file>.driver.lock`: every symbolic
link to the file finds the same sidecar, also across hosts that share the file system) and, once
the file exists, on a lock file named after the file's device and inode in LOCK_DIR (every hard
link to the file finds that one, on this host). Each holds a JSON description of its holder (pid,
host, run), so a refusal names who holds it. The kernel releases a lock when its process dies, so a
killed writer never blocks later ones.
"""
import fcntl
import json
import os
import socket
import time
from contextlib import contextmanager
from pathlib import Path

from tcnet.store.errors import FULL, FileBusyError, StoreError
from tcnet.store.identity import canonical, file_key

LOCK_DIR = Path("/tmp/tcnet-locks")  # the identity locks of this host, one per (device, inode) held
_HELD: dict = {}  # (canonical path, suffix) -> the WriteLock this process holds on it


def _sidecar(path, suffix: str) -> Path:
    """The sidecar lock file of the file `path` names: beside its canonical path."""
    where = canonical(path)
    return where.with_name(where.name + suffix)


def _identity(key: tuple[int, int], suffix: str) -> Path:
    """The lock file of the file with (device, inode) `key`, in LOCK_DIR."""
    return LOCK_DIR / f"{key[0]}-{key[1]}{suffix}"


def _make_lock_dir(path: Path) -> None:
    """Create LOCK_DIR, writable by every user as /tmp is (they lock their files in it too)."""
    if LOCK_DIR.is_dir():
        return
    try:
        LOCK_DIR.mkdir(parents=True, exist_ok=True)
        LOCK_DIR.chmod(0o1777)
    except OSError as err:
        if not LOCK_DIR.is_dir():
            raise StoreError(f"{path}: cannot create the lock directory {LOCK_DIR} ({err.strerror})") from None


def _take(lockpath: Path, path: Path, deadline: float) -> int | None:
    """A descriptor holding the exclusive flock on `lockpath` (created if missing), or None if
    another process still holds it at `deadline`."""
    while True:
        try:
            fd = os.open(lockpath, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as err:
            raise StoreError(f"{path}: cannot create the writer lock file {lockpath} ({err.strerror})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.05)
            continue
        try:  # the previous holder may have unlinked the path between our open and flock
            same = os.stat(lockpath).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)


def _describe(fd: int, owner: dict) -> None:
    """Write `owner` into the held lock file `fd`. On a full device it stays undescribed (a refusal
    then names no writer): the flock is the lock, and the write it guards meets the full device
    itself, in one clean error."""
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(owner).encode(), 0)
    except OSError as err:
        if err.errno not in FULL:
            raise


class WriteLock:
    """Exclusive right to write one file (a store, or any file `tcnet.store.atomic.new_file`
    creates), under whatever name: the sidecar `<canonical file><suffix>` and, once the file
    exists, its identity lock (module docstring), each holding the JSON description of the writer
    (`this_writer`)."""

    def __init__(self, path, suffix: str = ".lock"):
        self.path = Path(path)
        self.suffix = suffix
        self._held: list = []  # (lock file, descriptor)
        self._key = None  # the (canonical path, suffix) this lock is registered under in _HELD
        self._owner: dict = {}

    def acquire(self, owner: dict, wait: float = 0.5) -> None:
        """Take the lock within `wait` seconds, described by `owner`; FileBusyError naming the
        holder if another process keeps it (under this name or another)."""
        deadline = time.monotonic() + wait
        self._owner = owner
        try:
            self._hold(_sidecar(self.path, self.suffix), deadline)
            self._cover(deadline)
        except BaseException:
            self.release()
            raise
        self._key = (str(canonical(self.path)), self.suffix)
        _HELD[self._key] = self

    def _hold(self, lockpath: Path, deadline: float) -> None:
        fd = _take(lockpath, self.path, deadline)
        if fd is None:
            raise FileBusyError(f"{self.path}: another process is writing this file "
                                f"({describe_owner(_lock_owner(lockpath))}); two writers on one file are refused")
        self._held.append((lockpath, fd))
        _describe(fd, self._owner)

    def _cover(self, deadline: float) -> None:
        """Also hold the identity lock of the file, if it exists and this lock does not hold it yet."""
        key = file_key(self.path)
        if key is not None and len(self._held) == 1:
            _make_lock_dir(self.path)
            self._hold(_identity(key, self.suffix), deadline)

    def describe(self, owner: dict) -> None:
        """Replace the description of the held lock (a writer learns its run id after taking it)."""
        self._owner = owner
        for _, fd in self._held:
            _describe(fd, owner)

    def release(self) -> None:
        """Give the lock up (nothing if it is not held)."""
        for lockpath, fd in reversed(self._held):
            try:
                os.unlink(lockpath)  # unlinked while still held: see the inode check in _take
            except (FileNotFoundError, PermissionError):  # (another user's file in LOCK_DIR stays)
                pass
            os.close(fd)
        self._held = []
        if _HELD.get(self._key) is self:
            del _HELD[self._key]
        self._key = None


def cover(path) -> None:
    """The writer and driver locks this process holds on `path` now also hold the file's identity
    locks: called by whoever created the file under them, so that from then on no writer or driver
    gets in through a hard link to it (FileBusyError if one already has)."""
    for suffix in (".lock", ".driver.lock"):
        lock = _HELD.get((str(canonical(path)), suffix))
        if lock is not None:
            lock._cover(time.monotonic())


@contextmanager
def driver_lock(path):
    """Exclusive right to drive many runs into one file (a study): `flock` on `<file>.driver.lock`
    (and the file's identity) for as long as the block runs, taken before anything is computed,
    so a second driver on the same file is refused at once rather than after computing
    everything (FileBusyError). The runs themselves are still written one at a time under the
    writer lock."""
    lock = WriteLock(Path(path), ".driver.lock")
    lock.acquire(this_writer(), wait=0)
    try:
        yield
    finally:
        lock.release()


def _lock_owner(lockpath: Path) -> dict | None:
    """The description of the process holding the lock file `lockpath`, or None if nobody holds it."""
    try:
        fd = os.open(lockpath, os.O_RDONLY)
    except (FileNotFoundError, PermissionError):
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


def describe_owner(owner: dict | None) -> str:
    """A lock holder's description in words, for messages."""
    if not owner:
        return "writer unknown"
    run_id = f"run {owner['run']!r}, " if owner.get("run") else ""
    return f"{run_id}pid {owner.get('pid')} on host {owner.get('host')}"


def this_writer(run_id=None) -> dict:
    """The description of this process as the holder of a lock (writing run `run_id`, if any)."""
    return {"pid": os.getpid(), "host": socket.gethostname(), "run": run_id}


def writer_of(path, suffix: str = ".lock") -> dict | None:
    """The description of the process holding the writer lock (with `suffix` ".driver.lock": the
    driver lock) of the file `path` names, under any name, or None if nobody does."""
    owner = _lock_owner(_sidecar(path, suffix))
    key = file_key(path)
    if owner is None and key is not None:
        owner = _lock_owner(_identity(key, suffix))
    return owner
