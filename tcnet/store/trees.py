"""Optimizer-state trees (a checkpoint's `opt_state`): numpy arrays, numbers, strings, None, lists
of numbers and nested dicts of these, stored as datasets (with a `kind` attribute) and groups, so
that nothing is pickled and a resumed run gets back the types it saved."""
import numbers
from pathlib import Path

import h5py
import numpy as np

from tcnet.store.digests import DIGEST, stamp, verified
from tcnet.store.errors import StoreError
from tcnet.store.format import as_text, h5name, read_array
from tcnet.store.hdf5 import create_dataset, set_attrs


def _leaf(key: str, value, where: str):
    """(kind, numpy value) of one optimizer-state entry."""
    if value is None:
        return "none", h5py.Empty("f8")
    if isinstance(value, str):
        return "str", value
    if isinstance(value, (bool, np.bool_)):
        return "bool", np.bool_(value)
    if isinstance(value, numbers.Integral):
        return "int", np.int64(value)
    if isinstance(value, numbers.Real):
        return "float", np.float64(value)
    if isinstance(value, np.ndarray) and (np.issubdtype(value.dtype, np.number) or value.dtype == bool):
        return "array", value
    if isinstance(value, (list, tuple)):
        a = np.asarray(value)
        if a.dtype != object and (np.issubdtype(a.dtype, np.number) or a.dtype == bool):
            return "list", a
    raise StoreError(f"{where}: cannot store optimizer state {key!r} of type {type(value).__name__} "
                     "(allowed: numpy arrays, numbers, strings, None, lists of numbers, dicts of these)")


def nbytes(tree) -> int:
    """Bytes of the numbers and strings in a dict of arrays (or an optimizer-state tree)."""
    if isinstance(tree, dict):
        return sum(nbytes(v) for v in tree.values())
    if isinstance(tree, str):
        return len(tree.encode())
    return 0 if tree is None else np.asarray(tree).nbytes


def put(group: h5py.Group, name: str, kind: str, value) -> None:
    """Write a dataset, in place when shape and dtype allow (so repeated flushes do not grow the file),
    its digest with it."""
    old = group.get(name)
    if isinstance(old, h5py.Dataset) and as_text(old.attrs.get("kind", "")) == kind:
        if kind == "none" or (kind == "str" and old.asstr()[()] == value):
            return
        a = np.asarray(value)
        if kind != "str" and old.shape == a.shape and old.dtype == a.dtype:
            old[()] = a
            if DIGEST in old.attrs:
                stamp(old, a)
            return
    if old is not None:
        del group[name]
    set_attrs(create_dataset(group, name, value), kind=kind)


def write_tree(group: h5py.Group, tree: dict, where: str) -> None:
    """Make `group` hold `tree` (members it no longer has are deleted; datasets are rewritten in
    place where they can be); `where` names the file and run in errors."""
    for name in [k for k in group if k not in tree]:
        del group[name]
    for key, value in tree.items():
        name = h5name(key, "optimizer state key", Path(where))
        if isinstance(value, dict):
            if name in group and not isinstance(group[name], h5py.Group):
                del group[name]
            write_tree(group.require_group(name), value, where)
        else:
            put(group, name, *_leaf(key, value, where))


def read_tree(group: h5py.Group, where: str) -> dict:
    """The tree `write_tree` wrote into `group`, with the types it had; an array is read only once
    what it declares is checked (`read_array`; `where` names the file and run in errors)."""
    out = {}
    for key in group:
        obj = group[key]
        if isinstance(obj, h5py.Group):
            out[key] = read_tree(obj, where)
            continue
        kind = as_text(obj.attrs.get("kind", "array"))
        if kind == "none":
            out[key] = None
        elif kind == "str":
            out[key] = obj.asstr()[()]
        elif kind == "bool":
            out[key] = bool(obj[()])
        elif kind == "int":
            out[key] = int(obj[()])
        elif kind == "float":
            out[key] = float(obj[()])
        elif kind == "list":
            out[key] = verified(obj, read_array(obj, where)).tolist()
        else:
            out[key] = np.array(verified(obj, read_array(obj, where)))
    return out
