"""What code a run ran with: the digest of the source file of every plugin class its spec names
(dynamics, loss terms, optimizer and its stages), recorded with the run (the run attribute `code`,
docs/FORMAT.md) so that a study or a resume that reuses stored runs can say when the code that
computed them has changed since (a plugin file edited between two sessions of a study).

A digest covers the file that defines the class (for a single-file plugin: the plugin; for a
package's plugin: its module), not what that file imports."""
import functools
import hashlib
import inspect
import json
import os
import warnings

from tcnet.plugins import Registry, UnknownPluginError


class CodeChangedWarning(UserWarning):
    """Stored runs were computed with plugin code that has changed since."""


def _names(spec: dict):
    """(kind, name) of every plugin a run spec names, the stages of a staged optimizer included."""
    yield "dynamics", spec["dynamics"]["name"]
    for term in spec["loss"]:
        yield "loss", term["name"]
    stack = [spec["optimizer"]]
    while stack:
        entry = stack.pop()
        yield "optimizer", entry["name"]
        stack += [s for s in entry.get("stages", []) if isinstance(s, dict) and "name" in s]


@functools.lru_cache(maxsize=256)
def _digest(path: str, mtime_ns: int) -> str:
    with open(path, "rb") as f:
        return "sha256:" + hashlib.sha256(f.read()).hexdigest()


def file_digest(path: str) -> str:
    """'sha256:<hex>' of the file's bytes (cached while the file is unchanged on disk)."""
    return _digest(path, os.stat(path).st_mtime_ns)


def code_digests(spec: dict, plugins: Registry) -> dict[str, str]:
    """{source file: 'sha256:<hex>'} of the plugin classes the run spec `spec` (a dict) names; a
    name not registered, or a class without a source file, is left out."""
    out = {}
    for kind, name in _names(spec):
        try:
            path = inspect.getsourcefile(plugins.get(kind, name))
        except (UnknownPluginError, TypeError):
            continue
        if path:
            try:
                out[path] = file_digest(path)
            except OSError:
                continue
    return dict(sorted(out.items()))


def recorded_code(attrs: dict) -> dict:
    """The `code` a stored run recorded ({} for a run written before it was recorded, or unreadable)."""
    try:
        code = json.loads(attrs.get("code", "{}"))
    except (TypeError, ValueError):
        return {}
    return code if isinstance(code, dict) else {}


def changed_files(recorded: dict, current: dict) -> list[str]:
    """The files whose recorded digest differs from the current one (a file no longer used, or
    gone, counts as changed)."""
    return [path for path, digest in recorded.items() if current.get(path) != digest]


def warn_changed(subject: str, files: list[str], consequence: str, stacklevel: int = 2) -> None:
    """One CodeChangedWarning: `subject` (e.g. "run 'run-0001' was") computed with other code, the
    changed files, and `consequence` (what happens now)."""
    if files:
        warnings.warn(f"{subject} computed with other code than now: {', '.join(files)} changed since (the "
                      f"digest recorded with the run differs); {consequence}", CodeChangedWarning,
                      stacklevel=stacklevel + 1)
