"""The store's file format (docs/FORMAT.md): its name and versions, the root attributes a file
must carry, and reading what a file says (attributes, members) checked against the layout, so that
a file of an older version or a damaged one is refused in one line naming what was expected.

Versions: format_version 4 gives every array dataset a digest that readers check (tcnet.store.digests),
which older versions lack and an older tcnet, writing into a file, would not keep up to date;
version 3 stores a network's data (`Dynamics.data`) apart from its parameters, in
its own dtype, once per run (tcnet.store.networks); version 2 stores strings fixed-length (inside
their object's checksummed header), and every array of a network among its parameters, as float64;
version 1 (older files) strings variable-length. All four read; a file keeps its version when
written into (see `tcnet.store.hdf5`, which writes strings as the file's version stores them, and
digests only into files that keep them: `keeps_digests`).
"""
import json
import numbers
from pathlib import Path

import h5py
import numpy as np

from tcnet.resources import available_memory, size
from tcnet.store.errors import StoreError
from tcnet.version import __version__

FORMAT = "tcnet"
FORMAT_VERSION = 4  # 4: digests; 3: data apart from parameters; 2: strings fixed-length (checksummed with their object); 1: variable-length (FORMAT.md)
READ_VERSIONS = (1, 2, 3, 4)
DIGEST_VERSION = 4  # the first store version whose datasets carry digests
H5_VERSION = 2  # the version of the other formats (`tcnet.store.hdf5.new_h5`): strings as in a store of version 2
HISTORY_COLUMNS = {"step": "int64", "stage": "int64", "loss": "float64", "grad_norm": "float64",
                   "wall_time": "float64"}
CHUNK = 1024  # rows per history chunk
NETWORK_PARTS = ("initial", "final", "checkpoint")


def as_text(value) -> str:
    """A string attribute as str: h5py reads fixed-length strings (version 2) as bytes."""
    return value.decode() if isinstance(value, bytes) else str(value)


def check_root(path: Path, f: h5py.File, fmt: str = FORMAT) -> None:
    """Fail unless `f` is a file of format `fmt` (a tcnet store by default) of a format_version
    this tcnet reads."""
    found = f.attrs.get("format")
    if found is None or as_text(found) != fmt:
        found = "no 'format' attribute" if found is None else f"format={as_text(found)!r}"
        kind = "tcnet" if fmt == FORMAT else fmt
        raise StoreError(f"{path}: not a {kind} file (expected root attribute format='{fmt}', found {found})")
    version = f.attrs.get("format_version")
    if version is None or not isinstance(version, numbers.Integral) or int(version) not in READ_VERSIONS:
        version = int(version) if isinstance(version, numbers.Integral) else version
        writer = as_text(f.attrs.get("tcnet_version", "unknown"))
        raise StoreError(f"{path}: unknown format_version {version!r} (this tcnet {__version__} reads "
                         f"format_version {', '.join(map(str, READ_VERSIONS[:-1]))} and {READ_VERSIONS[-1]}; the file was written by "
                         f"tcnet {writer})")


def keeps_digests(f: h5py.File) -> bool:
    """Whether the datasets written into `f` get digests: every file of another format (written
    whole by `tcnet.store.hdf5.new_h5`) and stores of version DIGEST_VERSION on, which no older
    tcnet writes into (it refuses their version); an older store keeps its version and is written
    as before."""
    fmt = f.attrs.get("format")
    return fmt is None or as_text(fmt) != FORMAT or int(f.attrs.get("format_version", 1)) >= DIGEST_VERSION


def malformed(where: str, expected: str, found) -> StoreError:
    """The error for a file that breaks the layout at `where`: what was expected, what was found."""
    return StoreError(f"{where}: malformed file (expected {expected}, found {found})")


def int_attr(obj, key: str, where: str, low: int | None = None, high: int | None = None) -> int:
    """The integer attribute `key` of `obj` (a scalar of an integer type) within [low, high]."""
    value = obj.attrs.get(key)
    if value is None or isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise malformed(where, f"attribute {key!r} to be an integer", repr(value))
    if (low is not None and value < low) or (high is not None and value > high):
        raise malformed(where, f"attribute {key!r} in [{low}, {'inf' if high is None else high}]", int(value))
    return int(value)


def real_attr(obj, key: str, where: str) -> float:
    """The real-number attribute `key` of `obj`."""
    value = obj.attrs.get(key)
    if value is None or isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise malformed(where, f"attribute {key!r} to be a real number", repr(value))
    return float(value)


def text_attr(obj, key: str, where: str, default: str | None = None) -> str:
    """The string attribute `key` of `obj` (`default` if absent), which must be UTF-8 text."""
    value = obj.attrs.get(key, default)
    if not isinstance(value, (str, bytes)):
        raise malformed(where, f"attribute {key!r} to be a string", repr(value))
    try:
        return as_text(value)
    except UnicodeDecodeError:
        raise malformed(where, f"attribute {key!r} to be UTF-8 text", repr(value)) from None


def json_attr(obj, key: str, where: str) -> dict:
    """The JSON object held by the string attribute `key`."""
    text = text_attr(obj, key, where)
    try:
        value = json.loads(text)
    except ValueError:
        raise malformed(where, f"attribute {key!r} to hold JSON", repr(text[:60])) from None
    if not isinstance(value, dict):
        raise malformed(where, f"attribute {key!r} to hold a JSON object", type(value).__name__)
    return value


def member(group, key: str, default=None):
    """The member `key` of `group`, or `default` if it has no such link. (h5py's `get` answers the
    default also for a member that exists but cannot be opened, e.g. a failed checksum; here that
    raises, and `reading` names the damaged object.)"""
    return group[key] if key in group else default


def member_dataset(group, key: str, where: str, ndim: int | None = None, kinds: str = "iuf") -> h5py.Dataset:
    """The member `key` of `group`, which must be a dataset of a numeric dtype (numpy kinds
    `kinds`: i signed, u unsigned integers, f floats, b bool) and, if given, of rank `ndim`."""
    ds = member(group, key)
    if not isinstance(ds, h5py.Dataset):
        raise malformed(where, f"a dataset {key!r}", "nothing" if ds is None else "a group")
    if ds.dtype.kind not in kinds or (ndim is not None and ds.ndim != ndim):
        rank = "" if ndim is None else f"{ndim}-D "
        raise malformed(where, f"{key!r} to be a {rank}numeric dataset", f"dtype {ds.dtype}, shape {ds.shape}")
    return ds


def read_array(ds: h5py.Dataset, where: str, rows: int | None = None, written: bool = True) -> np.ndarray:
    """The data of the dataset `ds` (its first `rows` rows, if given), read only after checking
    what the file declares against what it holds: a file of a few kB can declare datasets of any
    size, which HDF5 reads back as fill values for the parts never written. So the bytes to read
    must fit in the memory available (`tcnet.resources.available_memory`), and a dataset tcnet
    writes whole (`written`: a network's arrays, a checkpoint's `x` and state; not the history
    columns, whose `extra/` rows before a key appeared are fill values) must hold the bytes it
    declares unless it is compressed. Either failure is a StoreError naming the dataset."""
    n = ds.size if rows is None else min(rows, ds.shape[0]) * int(np.prod(ds.shape[1:], dtype=np.float64))
    nbytes = float(n) * ds.dtype.itemsize
    declared = f"{ds.name} declares shape {ds.shape} of {ds.dtype} ({size(nbytes)})"
    if written and nbytes and ds.compression is None and ds.id.get_storage_size() < nbytes:
        raise StoreError(f"{where}: malformed file: {declared} but holds {size(ds.id.get_storage_size())} of "
                         "data (the rest was never written)")
    available = available_memory()
    if nbytes > available:
        raise StoreError(f"{where}: malformed or oversized file: {declared}, more than the {size(available)} of "
                         "memory available to read it")
    return ds[()] if rows is None else ds[:rows]


def member_group(group, key: str, where: str) -> h5py.Group:
    """The member `key` of `group`, which must be a group."""
    g = member(group, key)
    if not isinstance(g, h5py.Group):
        raise malformed(where, f"a group {key!r}", "nothing" if g is None else "a dataset")
    return g


def optional_group(group, key: str, where: str):
    """The member `key` of `group` if it is a group, {} if there is none (a store without runs or
    networks yet); anything else there (a dataset) is refused as malformed."""
    return member_group(group, key, where) if key in group else {}


def has(group, name: str) -> bool:
    """`name in group`, and False for a name no HDF5 object can have: text that is not UTF-8 (a
    command-line argument of undecodable bytes), which h5py cannot even look up."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return name in group


def h5name(name, what: str, path: Path) -> str:
    """`name`, if an object of `path` may be called so (the name of a `what`: network, run, array)."""
    if not isinstance(name, str) or not name or "/" in name or name in (".", ".."):
        raise StoreError(f"{path}: {what} name must be a non-empty string without '/', got {name!r}")
    return name


def checkpoint_group(g: h5py.Group, where: str = "") -> h5py.Group | None:
    """The committed checkpoint slot of a run group, or None before the first flush."""
    where = where or g.name
    slot = int_attr(g, "checkpoint", where, low=-1, high=1) if "checkpoint" in g.attrs else -1
    return None if slot < 0 else member_group(member_group(g, "checkpoint", where), str(slot), where)
