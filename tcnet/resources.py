"""Memory a request needs, checked before anything is allocated.

A command or a library call that will hold arrays whose size follows from user input (a network
size, a number of time points, a grid) estimates their bytes first and passes the estimate to
`require`, which refuses in one line (`ConfigError`) what the machine cannot hold, naming the
flag or setting and comparing the estimate with what is available. Without the check such a
request is not refused but grows memory until the kernel kills the process (or the machine
swaps to a halt).

What is available is the kernel's estimate of memory that can be allocated without swapping
(MemAvailable in /proc/meminfo on Linux, free physical pages elsewhere), and no more than the
address space left under the process's RLIMIT_AS, if one is set.
"""
import math
import os
import resource
import sys

from tcnet.validate import ConfigError

FLOAT = 8
"""Bytes of one float64."""


def available_memory() -> int:
    """Bytes this process can still allocate without swapping (see the module docstring)."""
    available = _meminfo_available()
    limit, _ = resource.getrlimit(resource.RLIMIT_AS)
    if limit != resource.RLIM_INFINITY:
        available = min(available, max(limit - _address_space(), 0))
    return available


def _meminfo_available() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def _address_space() -> int:
    """The process's current virtual size (what RLIMIT_AS counts), 0 where it cannot be read."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def size(nbytes: float) -> str:
    """A byte count for people: '512 B', '3.2 GB', '6.4e+05 TB'."""
    for unit in ("B", "kB", "MB", "GB"):
        if nbytes < 1000:
            return f"{nbytes:.3g} {unit}"
        nbytes /= 1000
    return f"{nbytes:.3g} TB"


def require(owner: str, request: str, nbytes: float) -> None:
    """Refuse `request` (the flag or setting and its value, e.g. "--grid 100000 (1e10 start
    points)") of `owner` (a command or plugin name) if its memory estimate `nbytes` exceeds
    `available_memory()`; an estimate may be a float (it can exceed any integer type)."""
    available = available_memory()
    if not nbytes <= available:
        need = f"about {size(nbytes)} of" if math.isfinite(nbytes) else "unbounded"
        raise ConfigError(f"{owner}: {request} needs {need} memory, more than the {size(available)} available")


def deep_size(obj) -> int:
    """Bytes held by a plan made of dicts, lists, tuples and scalars (sys.getsizeof, recursively):
    what keeping `obj` in memory costs."""
    if isinstance(obj, dict):
        return sys.getsizeof(obj) + sum(deep_size(k) + deep_size(v) for k, v in obj.items())
    if isinstance(obj, (list, tuple)):
        return sys.getsizeof(obj) + sum(deep_size(v) for v in obj)
    return sys.getsizeof(obj)
