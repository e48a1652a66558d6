"""Locks: at most one tcnet process writes a file, and at most one drives many runs into it.

Both are `flock`s on a sidecar file (`<file>.lock`, `<file>.driver.lock`) holding a JSON description
of its holder (pid, host, run), so a refusal names who holds it. The kernel releases a lock when its
process dies, so a killed writer never blocks later ones.
"""
import fcntl
import json
import os
import socket
import time
from contextlib import contextmanager
from pathlib import Path

from tcnet.store.errors import FileBusyError, StoreError


class WriteLock:
    """Exclusive right to write one file (a store, or any file `tcnet.store.atomic.new_file`
    creates): `flock` on the sidecar `<file>.lock` (`<file><suffix>`), which holds a JSON
    description of the writer (`this_writer`)."""

    def __init__(self, path: Path, suffix: str = ".lock"):
        self.path = path
        self.lockpath = path.with_name(path.name + suffix)
        self.fd = None

    def acquire(self, owner: dict, wait: float = 0.5) -> None:
        """Take the lock within `wait` seconds, described by `owner`; FileBusyError naming the
        holder if another process keeps it."""
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
                                        f"({describe_owner(_lock_owner(self.lockpath))}); two writers on "
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
        """Replace the description of the held lock (a writer learns its run id after taking it)."""
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, json.dumps(owner).encode(), 0)

    def release(self) -> None:
        """Give the lock up (nothing if it is not held)."""
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
    lock = WriteLock(Path(path), ".driver.lock")
    lock.acquire(this_writer(), wait=0)
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


def describe_owner(owner: dict | None) -> str:
    """A lock holder's description in words, for messages."""
    if not owner:
        return "writer unknown"
    run_id = f"run {owner['run']!r}, " if owner.get("run") else ""
    return f"{run_id}pid {owner.get('pid')} on host {owner.get('host')}"


def this_writer(run_id=None) -> dict:
    """The description of this process as the holder of a lock (writing run `run_id`, if any)."""
    return {"pid": os.getpid(), "host": socket.gethostname(), "run": run_id}


def writer_of(path: Path) -> dict | None:
    """The description of the process holding the writer lock of `path`, or None if nobody does."""
    return _lock_owner(path.with_name(path.name + ".lock"))
