"""Which file a path names. tcnet locks, replaces and compares files by what they are, not by how
their path is spelled: a symbolic link names its target (`canonical`: the path with every link
resolved, a dangling one too, whose target is where a new file goes), and hard links name one
file (`file_key`: its device and inode). `same_file` compares two paths so.

A command also records the files it reads or writes (`command`, `use`), so that it never replaces
one of them with an output of its own (`used`): a study's CSV table written over the study's store
would lose the store.
"""
import os
from contextlib import contextmanager
from pathlib import Path


def canonical(path) -> Path:
    """`path` absolute, with every symbolic link resolved (a missing last part kept as it is)."""
    return Path(os.path.realpath(path))


def file_key(path) -> tuple[int, int] | None:
    """(device, inode) of the file `path` names (through links), or None if there is none."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def same_file(a, b) -> bool:
    """Whether the paths `a` and `b` name one file: the same canonical path (so also two spellings
    of a file not made yet), or one existing file (a hard link)."""
    if canonical(a) == canonical(b):
        return True
    key = file_key(a)
    return key is not None and key == file_key(b)


_used: dict | None = None  # canonical path -> file key, of each file the running command used


@contextmanager
def command():
    """The scope of one command: the files read or written inside it (`use`) are recorded, so
    that `used` can tell an output path that names one of them."""
    global _used
    outer, _used = _used, {}
    try:
        yield
    finally:
        _used = outer


def use(path) -> None:
    """Record that the running command reads or writes the file `path` (nothing outside `command`)."""
    if _used is not None:
        _used[canonical(path)] = file_key(path)


def used(path) -> bool:
    """Whether the running command has read or written the file `path` (under any name)."""
    if not _used:
        return False
    key = file_key(path)
    return canonical(path) in _used or (key is not None and key in _used.values())
