"""A run specification: what to run, as plain JSON, checked against the plugins' declarations.

A run spec names a dynamics, weighted loss terms and an optimizer::

    {"dynamics":  {"name": "linear_decay", "seed": 2, "N": 100},
     "loss":      [{"name": "decay"}, {"name": "stability", "weight": 1e5}],
     "optimizer": {"name": "staged", "stages": [{"name": "adam", "steps": 30},
                                               {"name": "lbfgs", "max_iter": 200}]}}

In `dynamics`, every key but name and seed is a setting of the dynamics; in a loss term, weight
and label are the term's and every other key is the loss's setting; in `optimizer`, the
optimizer's settings. `resolve` checks every key against what the plugin declares (tcnet.settings)
before anything is built or computed, and returns the spec with every default filled in: the spec
a run stores, so that it is read, resumed or rerun later with the values it ran with.

The same spec written as TOML, with the file its run goes to and the plugin files it needs, is a
`SpecFile` (`tcnet run SPEC.toml`; the format is docs/SPEC.md).
"""
import copy
import json
import tomllib
from dataclasses import dataclass
from pathlib import Path

from tcnet.dynamics import Dynamics
from tcnet.loss import Objective, Term
from tcnet.optim import Optimizer
from tcnet.plugins import Registry
from tcnet.validate import ConfigError, closest, no_extra, seed as check_seed

SECTIONS = ("dynamics", "loss", "optimizer")
FILE_KEYS = (*SECTIONS, "out", "plugins")
"""The top-level keys of a run spec file (`SpecFile`)."""


def _named(section, entry):
    if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
        raise ConfigError(f"run spec: each {section} entry must be a table with a string 'name', got {entry!r}")
    return entry


@dataclass(frozen=True)
class RunSpec:
    """What to run: dynamics, weighted loss terms and optimizer, as JSON-serializable dicts."""

    dynamics: dict
    loss: list
    optimizer: dict

    def __post_init__(self):
        _named("dynamics", self.dynamics)
        if not isinstance(self.loss, (list, tuple)) or not self.loss:
            raise ConfigError(f"run spec: loss must be a non-empty list of terms, got {self.loss!r}")
        for term in self.loss:
            _named("loss", term)
        _named("optimizer", self.optimizer)
        try:
            json.dumps(self.as_dict())
        except TypeError as err:
            raise ConfigError(f"run spec: must be JSON-serializable ({err})") from None

    @classmethod
    def from_dict(cls, d: dict) -> "RunSpec":
        if not isinstance(d, dict):
            raise ConfigError(f"run spec: must be a table with sections {', '.join(SECTIONS)}, got {d!r}")
        extra = sorted(set(d) - set(SECTIONS), key=str)
        if extra:
            named = ", ".join(f"{k!r}{closest(k, SECTIONS)}" for k in extra)
            raise ConfigError(f"run spec: unknown section(s) {named}; a run spec has {', '.join(SECTIONS)}")
        missing = [k for k in SECTIONS if k not in d]
        if missing:
            raise ConfigError(f"run spec: missing section(s) {', '.join(missing)}")
        return cls(copy.deepcopy(d["dynamics"]), copy.deepcopy(list(d["loss"])), copy.deepcopy(d["optimizer"]))

    def as_dict(self) -> dict:
        return {"dynamics": self.dynamics, "loss": list(self.loss), "optimizer": self.optimizer}

    def resolve(self, plugins: Registry, dynamics: bool = True) -> "RunSpec":
        """This spec with every key checked against its plugin's declared settings and every
        default filled in; raises ConfigError naming the plugin, the key and what is allowed.
        Builds the loss terms and the optimizer (cheap, nothing is evaluated), not the dynamics;
        with dynamics=False its entry is kept as it is (a run of a network given as an object)."""
        terms = [build_term(t, plugins) for t in self.loss]
        Objective.check_labels([t.label for t in terms])
        return RunSpec(resolve_dynamics(self.dynamics, plugins) if dynamics else self.dynamics,
                       [term_entry(t) for t in terms], build_optimizer(self.optimizer, plugins).config)


def read_toml(path: Path, owner: str) -> dict:
    """A TOML file's tables; a file that is not TOML (an HDF5 file given in its place, say) is one
    ConfigError starting with `owner`."""
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{owner}: not valid TOML ({err})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{owner}: not valid TOML (not UTF-8 text)") from None


@dataclass(frozen=True)
class SpecFile:
    """A run spec file (TOML, run by `tcnet run`): the sections of a run spec, plus `out`, the
    HDF5 file its run goes to, and `plugins`, the single-file plugins that register the names it
    uses; both are paths relative to the spec file. `out` defaults to the spec file's own name
    with the suffix .h5 beside it (runs/adam.toml -> runs/adam.h5): one file per spec, in which
    running the spec again finds its run to continue. docs/SPEC.md describes the format."""

    path: Path
    spec: RunSpec
    out: Path
    plugins: tuple[Path, ...] = ()

    @classmethod
    def read(cls, path) -> "SpecFile":
        """The spec file at `path`, its keys checked (not yet against the plugins: that is
        `RunSpec.resolve`); every error is one ConfigError starting with the path."""
        path = Path(path)
        d = read_toml(path, str(path))
        try:
            no_extra("run spec", d, FILE_KEYS)
            spec = RunSpec.from_dict({k: v for k, v in d.items() if k in SECTIONS})
        except ConfigError as err:
            raise ConfigError(f"{path}: {err}") from None
        out = d.get("out", path.with_suffix(".h5").name)
        if not isinstance(out, str) or not out.strip():
            raise ConfigError(f"{path}: out must be the path of the HDF5 file of the run (relative to the spec "
                              f"file), got {out!r}")
        out = path.parent / out
        if out.resolve() == path.resolve():
            raise ConfigError(f"{path}: out must not be the spec file itself (give out = \"<name>.h5\")")
        plugins = d.get("plugins", [])
        if not isinstance(plugins, list) or not all(isinstance(p, str) and p for p in plugins):
            raise ConfigError(f"{path}: plugins must be a list of single-file plugin paths (relative to the "
                              f"spec file), got {plugins!r}")
        missing = [p for p in plugins if not (path.parent / p).is_file()]
        if missing:
            raise ConfigError(f"{path}: plugins: no file {', '.join(map(repr, missing))} (paths are relative to "
                              f"the spec file, in {path.parent.resolve()})")
        return cls(path, spec, out, tuple(path.parent / p for p in plugins))


def resolve_dynamics(entry: dict, plugins: Registry) -> dict:
    """The dynamics entry with its seed (default 0) and settings checked, defaults filled in."""
    cls = plugins.get("dynamics", entry["name"])
    seed = check_seed(cls.name, "seed", entry.get("seed", 0))
    settings = cls.resolve({k: v for k, v in entry.items() if k not in ("name", "seed")})
    return {"name": cls.name, "seed": seed, **settings}


def build_dynamics(entry: dict, plugins: Registry) -> Dynamics:
    """A new dynamics from a (resolved or not) dynamics entry."""
    cfg = {k: v for k, v in entry.items() if k not in ("name", "seed")}
    return plugins.get("dynamics", entry["name"]).create(seed=entry.get("seed", 0), **cfg)


def build_term(entry: dict, plugins: Registry) -> Term:
    """A weighted loss term from its entry: weight and label are the term's, the rest the loss's."""
    cls = plugins.get("loss", entry["name"])
    given = {k: v for k, v in entry.items() if k != "name"}
    term = cls.term_settings().resolve(cls.name, given) if cls.declares_settings() else {
        "weight": entry.get("weight", 1.0), "label": entry.get("label")}
    loss = cls(**{k: v for k, v in given.items() if k not in ("weight", "label")})
    return Term(loss, term["weight"], term["label"] or "")


def term_entry(term: Term) -> dict:
    """The resolved spec entry of a built term."""
    return {"name": term.loss.name, "weight": term.weight, "label": term.label, **term.loss.config}


def build_objective(dynamics: Dynamics, terms: list, plugins: Registry) -> Objective:
    return Objective(dynamics, [build_term(t, plugins) for t in terms])


def build_optimizer(entry: dict, plugins: Registry) -> Optimizer:
    settings = {k: v for k, v in entry.items() if k != "name"}
    cls = plugins.get("optimizer", entry["name"])
    return cls.from_config(settings, lambda e: build_optimizer(_named("optimizer", e), plugins))
