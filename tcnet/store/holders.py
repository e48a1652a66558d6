"""The processes holding a file locked, by the kernel's list of locks (/proc/locks on Linux), so
that a writer kept waiting by a reader (a notebook's open `h5py.File`: HDF5 takes a shared `flock`
on every file it opens) can say who it is waiting for."""
import os
from pathlib import Path

_LOCKS = Path("/proc/locks")


def holders(path) -> list[str]:
    """'pid <pid> (<command line>)' of every process holding a lock on the file `path` ('this
    process' for this one), in the order the kernel lists them; [] where the list cannot be read
    (not Linux) or nobody holds one."""
    try:
        st = os.stat(path)
        lines = _LOCKS.read_text().splitlines()
    except OSError:
        return []
    device = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    pids = []
    for line in lines:
        fields = line.split()
        if "->" in fields or len(fields) < 6:  # a process waiting for the lock, not holding it
            continue
        pid, where = fields[4], fields[5]
        if where == device and pid.isdigit() and pid not in pids:
            pids.append(pid)
    return [_describe(int(pid)) for pid in pids]


def _describe(pid: int) -> str:
    if pid == os.getpid():
        return f"pid {pid} (this process)"
    try:
        command = " ".join(Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").replace("\0", " ").split())
    except OSError:
        command = ""
    command = command if len(command) <= 60 else command[:57] + "..."
    return f"pid {pid}" + (f" ({command})" if command else "")
