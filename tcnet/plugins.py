"""Plugins: pluggy hook specifications, discovery and the registry of dynamics, losses, optimizers.

A plugin is a module with hook implementations, e.g. a loss in one file::

    from tcnet import Loss, hookimpl

    class Energy(Loss):
        name = "energy"
        def __call__(self, state): ...

    @hookimpl
    def tcnet_losses():
        return [Energy]

Plugins come from the entry-point group ``tcnet`` of installed distributions (tcnet's own built-ins
are registered there exactly like a third party's) and from single ``.py`` files. A plugin that
fails to import, or whose hook raises, is recorded as a `PluginFailure` naming it and its error;
the others load regardless. Two plugins registering the same name for the same kind is an error
naming both sources.
"""
import importlib.util
import inspect
import json
import sys
import warnings
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path

import pluggy

from tcnet.settings import REQUIRED
from tcnet.validate import closest

PROJECT = "tcnet"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

KINDS = {"dynamics": "tcnet_dynamics", "loss": "tcnet_losses", "optimizer": "tcnet_optimizers"}


class HookSpecs:
    """What a plugin may implement (any subset)."""

    @hookspec
    def tcnet_dynamics(self):
        """Return a list of `tcnet.Dynamics` subclasses."""

    @hookspec
    def tcnet_losses(self):
        """Return a list of `tcnet.Loss` subclasses."""

    @hookspec
    def tcnet_optimizers(self):
        """Return a list of `tcnet.Optimizer` subclasses."""

    @hookspec
    def tcnet_commands(self, subparsers):
        """Add subcommands to the `tcnet` command line (an argparse subparsers object). Each added
        parser must set a handler with ``parser.set_defaults(handler=func)``; ``func(args)``
        returns the exit code."""


class PluginError(Exception):
    """A plugin registry cannot be built (e.g. one name registered twice)."""


class NothingRegistered(PluginError):
    """A plugin file with no hook implementation."""


class PluginWarning(UserWarning):
    """A plugin file given by name did not load, or registers nothing: what it should have
    registered is missing from the registry."""


class UnknownPluginError(KeyError):
    """A dynamics, loss or optimizer name that no plugin registers."""

    def __str__(self):
        return self.args[0]


@dataclass(frozen=True)
class Entry:
    """A registered class with the plugin it came from."""

    kind: str
    name: str
    cls: type
    source: str

    @property
    def settings(self):
        """Every key a spec entry of this plugin takes (a tcnet.settings.Settings: for a loss its
        term's weight and label first), or None for a plugin that declares none (keys unchecked)."""
        declares = getattr(self.cls, "declares_settings", None)
        if declares is not None and not declares():
            return None
        return self.cls.term_settings() if self.kind == "loss" else self.cls.SETTINGS

    @property
    def summary(self) -> str:
        """The first paragraph of the class's docstring."""
        return inspect.getdoc(self.cls).split("\n\n")[0] if self.cls.__doc__ else "(no description)"


def settings_page(entries) -> str:
    """docs/SETTINGS.md: every setting of the given plugins as Markdown tables, from their
    declarations (`tcnet plugins --markdown` prints it for tcnet's own plugins)."""
    lines = ["# Settings of tcnet's plugins", "",
             "Generated from each plugin's declaration (`SETTINGS`, tcnet.settings) by "
             "`tcnet plugins --markdown`; a test fails when this page is stale. `tcnet plugins NAME` prints the same "
             "for any plugin, a third party's included. A key that is not listed is refused, with the closest "
             "listed name; `null` (TOML: leave the key out) means what the setting's text says. How specs use these "
             "keys: [SPEC.md](SPEC.md).", ""]
    for kind in KINDS:
        for e in (e for e in entries if e.kind == kind):
            lines += [f"## {kind} `{e.name}`", "", " ".join(e.summary.split()), ""]
            settings = e.settings
            if settings is None:
                lines += ["Declares no settings: its keys are not checked.", ""]
                continue
            if not settings:
                lines += ["No settings.", ""]
                continue
            lines += ["| setting | unit | allowed | default | meaning |", "|---|---|---|---|---|"]
            for st in settings:
                default = "required" if st.default is REQUIRED else f"`{json.dumps(st.default)}`"
                allowed = st.allowed() + (" or null" if st.default is None else "")
                cells = [f"`{st.name}`", st.unit, allowed, default, st.doc + ("" if st.stored else
                         " (used to build a new network; not kept in its configuration)")]
                lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
            lines.append("")
    return "\n".join(lines)


@dataclass(frozen=True)
class PluginFailure:
    """A plugin that could not be loaded or whose hook raised."""

    source: str
    error: BaseException

    def __str__(self):
        if isinstance(self.error, NothingRegistered):
            return f"plugin {self.source} {self.error}"
        return f"plugin {self.source} failed: {type(self.error).__name__}: {self.error}"


class Registry:
    """Everything the loaded plugins register, by kind and name, with sources and failures."""

    def __init__(self, files=(), entry_point_group: str | None = PROJECT):
        self.manager = pluggy.PluginManager(PROJECT)
        self.manager.add_hookspecs(HookSpecs)
        self.failures: list[PluginFailure] = []
        if entry_point_group:
            for ep in sorted(entry_points(group=entry_point_group), key=lambda e: e.name):
                dist = f" [{ep.dist.name} {ep.dist.version}]" if ep.dist else ""
                self._add(lambda ep=ep: ep.load(), f"entry point {ep.name} ({ep.value}){dist}")
        for path in dict.fromkeys(Path(f).resolve() for f in files):  # the same file given twice loads once
            if path.suffix != ".py" or not path.is_file():  # a wrong name, not a broken plugin: nothing to run
                raise PluginError(f"plugin file {path}: no such file (a single-file plugin, .py, is expected)")
            self._add(lambda path=path: _import_file(path), f"file {path}", file=True)
        self.entries: dict[str, dict[str, Entry]] = {kind: {} for kind in KINDS}
        self.aliases: dict[str, dict[str, str]] = {kind: {} for kind in KINDS}  # former name -> name
        for kind, hook in KINDS.items():
            self._collect(kind, hook)
        for failure in self.file_failures:
            warnings.warn(str(failure), PluginWarning, stacklevel=2)

    @property
    def file_failures(self) -> list["PluginFailure"]:
        """The failures of plugin files given by name (the user asked for them: an error on the
        command line, a PluginWarning from Python), not of installed entry points."""
        return [f for f in self.failures if f.source.startswith("file ")]

    def _add(self, load, source, file=False):
        try:
            module = load()
            if file and not _hook_functions(module):
                raise NothingRegistered(_registers_nothing(module))
            if not self.manager.is_registered(module):
                self.manager.register(module, name=source)  # the plugin's name is where it came from
        except Exception as err:  # a broken plugin (or a hook with a wrong signature) must not take the others down
            self.failures.append(PluginFailure(source, err))

    def _collect(self, kind, hook):
        for impl in getattr(self.manager.hook, hook).get_hookimpls():
            source = impl.plugin_name
            try:
                classes = list(impl.function())
            except Exception as err:
                self.failures.append(PluginFailure(source, err))
                continue
            for cls in classes:
                name = getattr(cls, "name", "")
                if not name:
                    self.failures.append(PluginFailure(source, PluginError(f"{kind} class {cls!r} has no name")))
                    continue
                if name in self.entries[kind]:
                    other = self.entries[kind][name].source
                    raise PluginError(f"{kind} {name!r} is registered twice: by {other} and by {source}")
                self.entries[kind][name] = Entry(kind, name, cls, source)
                self.aliases[kind].update({alias: name for alias in getattr(cls, "aliases", ())})

    def get(self, kind: str, name: str) -> type:
        """The class registered under `name` (or a former name it declares in `aliases`) for
        `kind` ('dynamics', 'loss' or 'optimizer')."""
        try:
            return self.entries[kind][self.aliases.get(kind, {}).get(name, name)].cls
        except KeyError:
            names = sorted(self.entries.get(kind, {}))
            raise UnknownPluginError(f"unknown {kind} {name!r}{closest(name, names)}; registered: "
                                     f"{', '.join(names) or 'none'}") from None

    def all(self) -> list[Entry]:
        return [e for kind in KINDS for e in sorted(self.entries[kind].values(), key=lambda e: e.name)]

    def add_commands(self, subparsers) -> None:
        """Let every plugin add its subcommands; a raising hook is recorded as a failure."""
        for impl in self.manager.hook.tcnet_commands.get_hookimpls():
            try:
                impl.function(subparsers=subparsers)
            except Exception as err:
                self.failures.append(PluginFailure(impl.plugin_name, err))


def _hook_functions(module) -> list[str]:
    """The names of the module's functions decorated with @tcnet.hookimpl."""
    return [name for name, f in vars(module).items() if callable(f) and hasattr(f, f"{PROJECT}_impl")]


def _registers_nothing(module) -> str:
    """Why a plugin file registers nothing: no @tcnet.hookimpl function (naming the hook-named
    functions that lack the decorator)."""
    bare = [name for name, f in vars(module).items() if callable(f) and name in (*KINDS.values(), "tcnet_commands")]
    hint = f" ({', '.join(bare)} {'is' if len(bare) == 1 else 'are'} not decorated)" if bare else ""
    return f"registers nothing: no function decorated with @tcnet.hookimpl{hint}"


def _import_file(path: Path) -> object:
    """Import a single .py file (an existing, resolved path) as a module named after the file,
    under tcnet_file_plugins."""
    module_name = f"tcnet_file_plugins.{path.stem}_{abs(hash(str(path))):x}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[module_name]
        raise
    return module


_default: dict[tuple, Registry] = {}


def registry(files=()) -> Registry:
    """The registry of installed plugins plus the given plugin files (built once per file set)."""
    key = tuple(str(Path(f).resolve()) for f in files)
    if key not in _default:
        _default[key] = Registry(files)
    return _default[key]
