"""Saved networks (/networks/<name>), and a run's initial, final and checkpoint networks: writing
one, reading one back as stored (`NetworkData`) or as a ready Dynamics.

A network's parameters are float64 datasets of its group; its data (`Dynamics.data`) keeps its
dtype, in a group `data` that a saved network holds itself and a run's networks share (the run's
params/data, written once). Files of format version 1 and 2 hold the data among the parameters, as
float64; the dynamics reads them back in the form it keeps (`Dynamics.prepare_data`)."""
import json
import numbers
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from tcnet.dynamics import Dynamics
from tcnet.plugins import Registry, registry as default_registry
from tcnet.status import ENDED
from tcnet.store.digests import verified
from tcnet.store.errors import StoreError
from tcnet.store.format import (
    NETWORK_PARTS, as_text, checkpoint_group, h5name, has, int_attr, json_attr, member_dataset, member_group,
    optional_group, read_array, text_attr,
)
from tcnet.store.hdf5 import create_dataset, index_group, reading, set_attrs, writing
from tcnet.store.locks import WriteLock, this_writer
from tcnet.store.trees import nbytes
from tcnet.validate import ConfigError


@dataclass(frozen=True)
class NetworkData:
    """A network as stored: plugin name, configuration, seed, parameter arrays and data (no plugin
    needed; in a file of version 1 or 2 the data is among the arrays, as float64)."""

    where: str
    dynamics: str
    config: dict
    seed: int | None
    arrays: dict
    data: dict

    def build(self, plugins: Registry | None = None) -> Dynamics:
        """The ready Dynamics instance, through the plugin registry."""
        plugins = plugins or default_registry()
        if self.dynamics not in plugins.entries["dynamics"]:
            known = ", ".join(sorted(plugins.entries["dynamics"])) or "none"
            raise StoreError(f"{self.where}: dynamics {self.dynamics!r} is not registered (registered: "
                             f"{known}); install or load the plugin that provides it")
        try:
            return plugins.get("dynamics", self.dynamics)({**self.arrays, **self.data}, self.config, self.seed)
        except ConfigError as err:
            raise StoreError(f"{self.where}: the saved network fails validation: {err}") from None


def write_network(group: h5py.Group, dynamics: Dynamics, path: Path, data: bool = True) -> None:
    """Write `dynamics` into the empty `group`: its plugin name, config (JSON) and seed as
    attributes, one float64 dataset per parameter array, and (unless `data` is False: a run's
    networks, whose data the run holds once, `write_data`) its data in the group `data`."""
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
        create_dataset(group, h5name(key, "array", path), np.asarray(value, dtype=np.float64))
    if data and dynamics.data:
        write_data(group, dynamics, path)


def write_data(group: h5py.Group, dynamics: Dynamics, path: Path) -> None:
    """The data of `dynamics` as the group `data` of `group`, one dataset per array in its own dtype."""
    g = group.create_group("data", track_order=True)
    for key, value in dynamics.data.items():
        create_dataset(g, h5name(key, "data array", path), value)


def _arrays(members: dict, where: str, kinds: str) -> dict:
    """The datasets `members` (name -> member of a network's group; other members refused) as
    arrays of numpy kinds `kinds`, floats checked finite."""
    arrays = {}
    for key in members:
        if not isinstance(members[key], h5py.Dataset):
            raise StoreError(f"{where}: malformed network (expected only array datasets, found group {key!r})")
        ds = member_dataset(members, key, where, kinds=kinds)
        a = verified(ds, read_array(ds, where))
        bad = np.count_nonzero(~np.isfinite(a)) if a.dtype.kind == "f" else 0
        if bad:
            raise StoreError(f"{where}: array {key!r} has {bad} non-finite entries (expected finite values)")
        arrays[key] = a
    return arrays


def read_network(group: h5py.Group, where: str, data: h5py.Group | None = None) -> NetworkData:
    """The network of `group` (written by `write_network`) as stored, its arrays checked finite;
    its data from its own group `data`, else from `data` (a run's params/data)."""
    for key in ("dynamics", "config"):
        if key not in group.attrs:
            raise StoreError(f"{where}: malformed network (expected attribute {key!r}, found "
                             f"{sorted(group.attrs) or 'no attributes'})")
    if "data" in group:
        data = member_group(group, "data", where)
    parameters = {k: group[k] for k in group if k != "data"}
    arrays = {k: np.asarray(a, dtype=np.float64) for k, a in _arrays(parameters, where, "f").items()}
    seed = None if "seed" not in group.attrs else int_attr(group, "seed", where, low=0)
    return NetworkData(where, text_attr(group, "dynamics", where), json_attr(group, "config", where), seed, arrays,
                       {} if data is None else _arrays({k: data[k] for k in data}, where, "iufb"))


def save_network(path, name: str, dynamics: Dynamics, *, overwrite: bool = False) -> None:
    """Save `dynamics` as /networks/<name> (the file is created if missing)."""
    path = Path(path)
    h5name(name, "network", path)
    bad = [k for k, a in dynamics.arrays.items() if not np.all(np.isfinite(a))]
    if bad:
        raise StoreError(f"{path}: network {name!r} not saved: array(s) {', '.join(bad)} hold non-finite values")
    lock = WriteLock(path)
    lock.acquire(this_writer())
    try:
        with writing(path, reserve=nbytes(dynamics.arrays) + nbytes(dynamics.data)) as f:
            networks = index_group(f, "networks")
            if name in networks:
                if not overwrite:
                    raise StoreError(f"{path}: network {name!r} exists already (pass overwrite=True to replace it)")
                del networks[name]
            write_network(networks.create_group(name, track_order=True), dynamics, path)
    finally:
        lock.release()


def no_initial_network(path, run_id: str, message: str) -> StoreError:
    """The error for asking a run that failed before its network was created for that network."""
    return StoreError(f"{path}: run {run_id!r} has no initial network: it failed before its network was "
                      f"created ({message})")


def _network_data(f: h5py.File, path: Path, name: str) -> tuple[NetworkData, np.ndarray | None]:
    """The stored network `name` and, for '<run>/checkpoint', the checkpoint's parameter vector."""
    networks = optional_group(f, "networks", str(path))
    if has(networks, name):
        return read_network(networks[name], f"{path}: network {name!r}"), None
    runs = optional_group(f, "runs", str(path))
    run_id, _, part = name.partition("/")
    part = part or "final"
    if not has(runs, run_id) or part not in NETWORK_PARTS:
        raise StoreError(
            f"{path}: no network {name!r} (networks: {', '.join(networks) or 'none'}; runs: "
            f"{', '.join(runs) or 'none'}; a run's network is '<run>', '<run>/initial', '<run>/final' "
            "or '<run>/checkpoint')")
    g = runs[run_id]
    if part == "checkpoint":
        c = checkpoint_group(g)
        if c is None:
            raise StoreError(f"{path}: run {run_id!r} has no checkpoint (it stopped before its first flush)")
        data = read_network(g["params/initial"], f"{path}: run {run_id!r} checkpoint", run_data(g))
        where = f"{path}: run {run_id!r} checkpoint"
        x = member_dataset(c, "x", where, ndim=1, kinds="f")
        return data, np.array(verified(x, read_array(x, where)), dtype=np.float64)
    status = as_text(g.attrs.get("status", "unknown"))
    if part == "initial" and "params/initial" not in g:
        raise no_initial_network(path, run_id, as_text(g.attrs.get("message", "")))
    if part == "final" and status not in ENDED:
        raise StoreError(f"{path}: run {run_id!r} has no final network (it did not finish; stored status "
                         f"{status}); use '{run_id}/checkpoint' for its last checkpoint or '{run_id}/initial'")
    return read_network(g[f"params/{part}"], f"{path}: run {run_id!r} {part} network", run_data(g)), None


def run_data(g: h5py.Group) -> h5py.Group | None:
    """The data a run's networks share (params/data), or None (a dynamics without data, or a file
    of version 1 or 2, whose networks hold their data themselves)."""
    return g["params/data"] if "params/data" in g else None


def load_network(path, name: str, *, plugins: Registry | None = None) -> Dynamics:
    """The network `name` as a ready Dynamics: a saved network /networks/<name>, or a run's network
    addressed as '<run>' (its final network), '<run>/final', '<run>/initial' or
    '<run>/checkpoint' (the initial network with the checkpoint's trainable parameters)."""
    path = Path(path)
    with reading(path) as f:
        data, theta = _network_data(f, path, name)
    base = data.build(plugins)
    if theta is None:
        return base
    if theta.shape != (base.size,):
        raise StoreError(f"{data.where}: checkpoint x has shape {theta.shape}, expected ({base.size},)")
    return base.with_vector(theta)


def list_networks(path) -> list[str]:
    """Names of the saved networks (/networks/<name>)."""
    with reading(path) as f:
        return list(optional_group(f, "networks", str(path)))


def network_data(path, name: str) -> NetworkData:
    """A saved network as stored (name, config, seed, arrays), without building it."""
    path = Path(path)
    with reading(path) as f:
        return _network_data(f, path, name)[0]

