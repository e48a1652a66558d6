"""Saved networks (/networks/<name>, and a run's initial, final and checkpoint networks), simulated
trajectory files, and optimizer-state trees (stored as datasets and groups, nothing pickled)."""
import json
import numbers
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from tcnet.dynamics import Dynamics
from tcnet.plugins import Registry, registry as default_registry
from tcnet.store._files import (
    FINISHED, NETWORK_PARTS, StoreError, _WriteLock, _dataset, _group, _h5name, _has, _int_attr,
    _json_attr, _member, _owner, _reading, _text, _text_attr, _writing, create_dataset, set_attrs,
    new_h5, read_h5,
)
from tcnet.validate import ConfigError


@dataclass(frozen=True)
class NetworkData:
    """A network as stored: plugin name, configuration, seed and arrays (no plugin needed)."""

    where: str
    dynamics: str
    config: dict
    seed: int | None
    arrays: dict

    def build(self, plugins: Registry | None = None) -> Dynamics:
        """The ready Dynamics instance, through the plugin registry."""
        plugins = plugins or default_registry()
        if self.dynamics not in plugins.entries["dynamics"]:
            known = ", ".join(sorted(plugins.entries["dynamics"])) or "none"
            raise StoreError(f"{self.where}: dynamics {self.dynamics!r} is not registered (registered: "
                             f"{known}); install or load the plugin that provides it")
        try:
            return plugins.get("dynamics", self.dynamics)(self.arrays, self.config, self.seed)
        except ConfigError as err:
            raise StoreError(f"{self.where}: the saved network fails validation: {err}") from None


def _write_network(group: h5py.Group, dynamics: Dynamics, path: Path) -> None:
    seed = dynamics.seed
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral)):
        raise StoreError(f"{path}: network seed must be an integer or None, got {seed!r}")
    try:
        config = json.dumps(dynamics.config, sort_keys=True)
    except TypeError as err:
        raise StoreError(f"{path}: network config must be JSON-serializable ({err})") from None
    set_attrs(group, dynamics=dynamics.name, config=config)
    if seed is not None:
        group.attrs["seed"] = np.int64(seed)
    for key, value in dynamics.arrays.items():
        create_dataset(group, _h5name(key, "array", path), np.asarray(value, dtype=np.float64))


def _read_network(group: h5py.Group, where: str) -> NetworkData:
    for key in ("dynamics", "config"):
        if key not in group.attrs:
            raise StoreError(f"{where}: malformed network (expected attribute {key!r}, found "
                             f"{sorted(group.attrs) or 'no attributes'})")
    arrays = {}
    for key in group:
        if not isinstance(group[key], h5py.Dataset):
            raise StoreError(f"{where}: malformed network (expected only array datasets, found group {key!r})")
        a = np.array(_dataset(group, key, where, kinds="f")[()], dtype=np.float64)
        bad = np.count_nonzero(~np.isfinite(a))
        if bad:
            raise StoreError(f"{where}: array {key!r} has {bad} non-finite entries (expected finite values)")
        arrays[key] = a
    seed = None if "seed" not in group.attrs else _int_attr(group, "seed", where, low=0)
    return NetworkData(where, _text_attr(group, "dynamics", where), _json_attr(group, "config", where), seed, arrays)


def save_network(path, name: str, dynamics: Dynamics, *, overwrite: bool = False) -> None:
    """Save `dynamics` as /networks/<name> (the file is created if missing)."""
    path = Path(path)
    _h5name(name, "network", path)
    bad = [k for k, a in dynamics.arrays.items() if not np.all(np.isfinite(a))]
    if bad:
        raise StoreError(f"{path}: network {name!r} not saved: array(s) {', '.join(bad)} hold non-finite values")
    lock = _WriteLock(path)
    lock.acquire(_owner())
    try:
        with _writing(path, reserve=_nbytes(dynamics.arrays)) as f:
            networks = f.require_group("networks")
            if name in networks:
                if not overwrite:
                    raise StoreError(f"{path}: network {name!r} exists already (pass overwrite=True to replace it)")
                del networks[name]
            _write_network(networks.create_group(name, track_order=True), dynamics, path)
    finally:
        lock.release()


def no_initial_network(path, run_id: str, message: str) -> StoreError:
    """The error for asking a run that failed before its network was created for that network."""
    return StoreError(f"{path}: run {run_id!r} has no initial network: it failed before its network was "
                      f"created ({message})")


def _checkpoint_group(g: h5py.Group, where: str = "") -> h5py.Group | None:
    """The committed checkpoint slot of a run group, or None before the first flush."""
    where = where or g.name
    slot = _int_attr(g, "checkpoint", where, low=-1, high=1) if "checkpoint" in g.attrs else -1
    return None if slot < 0 else _group(_group(g, "checkpoint", where), str(slot), where)


def _network_data(f: h5py.File, path: Path, name: str) -> tuple[NetworkData, np.ndarray | None]:
    """The stored network `name` and, for '<run>/checkpoint', the checkpoint's parameter vector."""
    networks = _member(f, "networks", {})
    if _has(networks, name):
        return _read_network(networks[name], f"{path}: network {name!r}"), None
    runs = _member(f, "runs", {})
    run_id, _, part = name.partition("/")
    part = part or "final"
    if not _has(runs, run_id) or part not in NETWORK_PARTS:
        raise StoreError(
            f"{path}: no network {name!r} (networks: {', '.join(networks) or 'none'}; runs: "
            f"{', '.join(runs) or 'none'}; a run's network is '<run>', '<run>/initial', '<run>/final' "
            "or '<run>/checkpoint')")
    g = runs[run_id]
    if part == "checkpoint":
        c = _checkpoint_group(g)
        if c is None:
            raise StoreError(f"{path}: run {run_id!r} has no checkpoint (it stopped before its first flush)")
        data = _read_network(g["params/initial"], f"{path}: run {run_id!r} checkpoint")
        return data, np.array(c["x"][()], dtype=np.float64)
    status = _text(g.attrs.get("status", "unknown"))
    if part == "initial" and "params/initial" not in g:
        raise no_initial_network(path, run_id, _text(g.attrs.get("message", "")))
    if part == "final" and status not in FINISHED:
        raise StoreError(f"{path}: run {run_id!r} has no final network (it did not finish; stored status "
                         f"{status}); use '{run_id}/checkpoint' for its last checkpoint or '{run_id}/initial'")
    return _read_network(g[f"params/{part}"], f"{path}: run {run_id!r} {part} network"), None


def load_network(path, name: str, *, plugins: Registry | None = None) -> Dynamics:
    """The network `name` as a ready Dynamics: a saved network /networks/<name>, or a run's network
    addressed as '<run>' (its final network), '<run>/final', '<run>/initial' or
    '<run>/checkpoint' (the initial network with the checkpoint's trainable parameters)."""
    path = Path(path)
    with _reading(path) as f:
        data, theta = _network_data(f, path, name)
    base = data.build(plugins)
    if theta is None:
        return base
    if theta.shape != (base.size,):
        raise StoreError(f"{data.where}: checkpoint x has shape {theta.shape}, expected ({base.size},)")
    return base.with_vector(theta)


def list_networks(path) -> list[str]:
    """Names of the saved networks (/networks/<name>)."""
    with _reading(path) as f:
        return list(_member(f, "networks", {}))


def network_data(path, name: str) -> NetworkData:
    """A saved network as stored (name, config, seed, arrays), without building it."""
    path = Path(path)
    with _reading(path) as f:
        return _network_data(f, path, name)[0]


def file_info(path) -> dict:
    """The root attributes: format, format_version, tcnet_version."""
    with _reading(path) as f:
        return {k: (_text(v) if isinstance(v, (str, bytes)) else int(v)) for k, v in f.attrs.items()}


TRAJECTORY_FORMAT = "tcnet-trajectories"


def save_trajectories(path, t, x, *, force: bool = False, **attrs) -> None:
    """Write simulated trajectories (a separate file, see docs/FORMAT.md): t (T,), x (T, n, dim),
    norms (T, n), with string/number attributes such as the source file, network and seed. An
    existing file is replaced only with `force` (see `new_file`)."""
    with new_h5(path, TRAJECTORY_FORMAT, force) as f:
        set_attrs(f, **attrs)
        create_dataset(f, "t", np.asarray(t, dtype=np.float64))
        create_dataset(f, "x", np.asarray(x, dtype=np.float64))
        create_dataset(f, "norms", np.linalg.norm(x, axis=-1))


def read_trajectories(path) -> tuple[np.ndarray, np.ndarray, dict]:
    """A file of `save_trajectories`: t (T,), x (T, n, dim) and its root attributes."""
    with read_h5(path, TRAJECTORY_FORMAT) as f:
        if "t" not in f or "x" not in f:
            raise StoreError(f"{path}: not a trajectory file (expected datasets t and x, found {sorted(f)})")
        attrs = {k: (_text(v) if isinstance(v, (str, bytes)) else v.item()) for k, v in f.attrs.items()}
        return np.array(f["t"][()]), np.array(f["x"][()]), attrs


# --- optimizer state trees ---------------------------------------------------------------------

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


def _nbytes(tree) -> int:
    """Bytes of the numbers and strings in a dict of arrays (or an optimizer-state tree)."""
    if isinstance(tree, dict):
        return sum(_nbytes(v) for v in tree.values())
    if isinstance(tree, str):
        return len(tree.encode())
    return 0 if tree is None else np.asarray(tree).nbytes


def _put(group: h5py.Group, name: str, kind: str, value) -> None:
    """Write a dataset, in place when shape and dtype allow (so repeated flushes do not grow the file)."""
    old = group.get(name)
    if isinstance(old, h5py.Dataset) and _text(old.attrs.get("kind", "")) == kind:
        if kind == "none" or (kind == "str" and old.asstr()[()] == value):
            return
        a = np.asarray(value)
        if kind != "str" and old.shape == a.shape and old.dtype == a.dtype:
            old[()] = a
            return
    if old is not None:
        del group[name]
    set_attrs(create_dataset(group, name, value), kind=kind)


def _write_tree(group: h5py.Group, tree: dict, where: str) -> None:
    for name in [k for k in group if k not in tree]:
        del group[name]
    for key, value in tree.items():
        name = _h5name(key, "optimizer state key", Path(where))
        if isinstance(value, dict):
            if name in group and not isinstance(group[name], h5py.Group):
                del group[name]
            _write_tree(group.require_group(name), value, where)
        else:
            _put(group, name, *_leaf(key, value, where))


def _read_tree(group: h5py.Group) -> dict:
    out = {}
    for key in group:
        obj = group[key]
        if isinstance(obj, h5py.Group):
            out[key] = _read_tree(obj)
            continue
        kind = _text(obj.attrs.get("kind", "array"))
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
            out[key] = obj[()].tolist()
        else:
            out[key] = np.array(obj[()])
    return out
