"""Addressing a run spec with dotted keys, canonical JSON, run seeds and the planned run.

What the keys mean and how seeds are derived: see the `tcnet.study` docstring.
"""
import hashlib
import json
from dataclasses import dataclass

from tcnet.validate import ConfigError


def _flatten(table: dict, prefix="") -> dict:
    """{"a": {"b": v}} -> {"a.b": v}: nested TOML tables and quoted dotted keys mean the same."""
    out = {}
    for k, v in table.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def _term(spec: dict, label: str, key: str) -> dict:
    labels = [t.get("label") or t["name"] for t in spec["loss"]]
    if label not in labels:
        raise ConfigError(f"study: {key!r} names no loss term; term labels are {', '.join(labels)}")
    return spec["loss"][labels.index(label)]


def set_key(spec: dict, key: str, value) -> None:
    """Set the dotted `key` of a run spec dict in place (see the tcnet.study docstring)."""
    parts = key.split(".")
    if parts[0] not in ("dynamics", "loss", "optimizer") or len(parts) < 2:
        raise ConfigError(f"study: key {key!r} must start with dynamics., loss.<label>. or optimizer.")
    if parts[:2] == ["dynamics", "seed"]:
        raise ConfigError("study: dynamics.seed cannot be swept; seeds come from the study seed (use repeats)")
    if parts[0] == "loss":
        if len(parts) < 3:
            raise ConfigError(f"study: key {key!r} must be loss.<label>.<setting>")
        node, path = _term(spec, parts[1], key), parts[2:]
    else:
        node, path = spec[parts[0]], parts[1:]
    for p in path[:-1]:
        node = _child(node, p, key)
    last = path[-1]
    if isinstance(node, list):
        _child(node, last, key)
        node[int(last)] = value
    elif isinstance(node, dict):
        node[last] = value
    else:
        raise ConfigError(f"study: key {key!r} walks into {node!r}, which is not a table or list")


def _child(node, part, key):
    if isinstance(node, dict) and part in node:
        return node[part]
    if isinstance(node, list) and part.isdigit() and int(part) < len(node):
        return node[int(part)]
    raise ConfigError(f"study: key {key!r}: no entry {part!r} in {node!r}")


def canonical(obj) -> str:
    """Deterministic JSON (sorted keys, no spaces) used for run keys and ids."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def derive_seed(study_seed: int, key: str) -> int:
    """The dynamics seed of the run with this key: sha256("<study_seed>:<key>"), first 4 bytes LE."""
    return int.from_bytes(hashlib.sha256(f"{study_seed}:{key}".encode()).digest()[:4], "little")


@dataclass(frozen=True)
class PlannedRun:
    """One run of a study: its overrides (dotted key -> value), repeat, seed, its spec as the study
    file makes it (`spec`, which its id hashes) and as checked with every default filled in
    (`resolved`, what the run is given)."""

    run_id: str
    key: str
    overrides: dict
    repeat: int
    seed: int
    spec: dict
    resolved: dict

    def matches(self, stored: dict) -> bool:
        """Whether a stored run's spec is this run's: the spec as planned or resolved, or one that
        holds every value of it (a run records the values it ran with, e.g. an optimizer's
        model-dependent defaults, tcnet.optim.Optimizer.for_dynamics)."""
        return _covers(stored, self.spec) or _covers(stored, self.resolved)


def _covers(stored, planned) -> bool:
    if isinstance(planned, dict):
        return isinstance(stored, dict) and all(k in stored and _covers(stored[k], v) for k, v in planned.items())
    if isinstance(planned, list):
        return isinstance(stored, list) and len(stored) == len(planned) and all(map(_covers, stored, planned))
    return stored == planned
