"""The errors of the store: one class per way a file cannot be read or written as asked, each a
ValueError whose message is one line naming the file (commands print it as it is)."""
import errno

FULL = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)  # what a full device, a file size limit or a quota raise


class StoreError(ValueError):
    """A store file cannot be read or written as asked; the message names the file, what was
    expected and what was found."""


class FileBusyError(StoreError):
    """Another process is writing (or holds open) the file."""


class DiskFullError(StoreError):
    """The file cannot grow: the device is full (ENOSPC), a quota is reached (EDQUOT) or the file
    size limit (EFBIG). Nothing was written: the file holds what it held before."""


def one_line(err) -> str:
    """The text of an exception (HDF5's run over several lines) on one line."""
    return " ".join(str(err).split())
