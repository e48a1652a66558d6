"""The layers of tcnet, checked on the source (parsed with ast, nothing imported): the store sits
below the run layer and the package face, and the modules of tcnet.store share only public names.

Every import statement of a store module counts, even one inside a function (it runs when the
function does). Beyond the store, a module's dependencies are its module-level imports (not those
under `if TYPE_CHECKING:`): a function-level import in a lower module, made so that it runs late,
is not a layer it stands on.
"""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCES = {"tcnet": ROOT / "tcnet", "tcnet_plugins": ROOT / "plugins"}  # the package and the folder it is in
FACE = "tcnet"  # the package face (tcnet/__init__.py): it imports the run layer
ABOVE_STORE = ("tcnet.run", "tcnet.resume")


def _modules() -> dict:
    """{dotted name: path} of every module of tcnet and tcnet_plugins."""
    out = {}
    for package, folder in SOURCES.items():
        for path in folder.rglob("*.py"):
            parts = [package, *path.relative_to(folder).with_suffix("").parts]
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


MODULES = _modules()
STORE = sorted(m for m in MODULES if m == "tcnet.store" or m.startswith("tcnet.store."))


def _statements(body: list, top_level: bool):
    """The import statements of `body`: all of them, or with `top_level` those that run when the
    module is imported (descending into module-level if/try, but not `if TYPE_CHECKING:`)."""
    if not top_level:
        yield from (node for stmt in body for node in ast.walk(stmt) if isinstance(node, (ast.Import, ast.ImportFrom)))
        return
    for stmt in body:
        if isinstance(stmt, (ast.Import, ast.ImportFrom)):
            yield stmt
        elif isinstance(stmt, ast.If) and not (isinstance(stmt.test, ast.Name) and stmt.test.id == "TYPE_CHECKING"):
            yield from _statements(stmt.body + stmt.orelse, top_level)
        elif isinstance(stmt, ast.Try):
            yield from _statements(stmt.body + stmt.orelse + stmt.finalbody
                                   + [s for h in stmt.handlers for s in h.body], top_level)


def imports(module: str, top_level: bool = False) -> list:
    """(imported module, names taken from it, line) of each import of `module`; `from a import b`
    where a.b is a module of ours also imports the module a.b."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out = []
    for node in _statements(ast.parse(path.read_text(), str(path)).body, top_level):
        if isinstance(node, ast.Import):
            out += [(alias.name, (), node.lineno) for alias in node.names]
            continue
        base = node.module or ""
        if node.level:  # relative: from the package, one level up per extra dot
            anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
            base = f"{anchor}.{base}" if base else anchor
        names = tuple(alias.name for alias in node.names)
        out.append((base, names, node.lineno))
        out += [(f"{base}.{n}", (), node.lineno) for n in names if f"{base}.{n}" in MODULES]
    return out


def test_no_store_module_imports_the_run_layer_or_the_package_face():
    """Directly: no store module names tcnet.run, tcnet.resume or the face `tcnet` (`import tcnet`,
    `from tcnet import ...`) in any import."""
    bad = [f"{m}:{line} imports {target}" + (f" ({', '.join(names)})" if names else "")
           for m in STORE for target, names, line in imports(m)
           if target == FACE or target.startswith(ABOVE_STORE)]
    assert not bad, "the store sits below run and the package face:\n" + "\n".join(bad)


def test_nothing_the_store_stands_on_reaches_the_run_layer():
    """Transitively: following the store's imports, then each reached module's module-level
    imports, neither the run layer nor the face is reached."""
    seen, todo, via = set(STORE), [(m, (m,)) for m in STORE], []
    while todo:
        module, chain = todo.pop()
        for target, _, _ in imports(module, top_level=not module.startswith("tcnet.store")):
            if target == FACE or target.startswith(ABOVE_STORE):
                via.append(" -> ".join((*chain, target)))
            elif target in MODULES and target not in seen:
                seen.add(target)
                todo.append((target, (*chain, target)))
    assert not via, "the store reaches the layers above it:\n" + "\n".join(sorted(via))


def test_store_modules_share_public_names_only():
    """No module of tcnet/ or plugins/ imports a `_private` name (or a `_private` module) of
    tcnet.store: what store modules share is public there, so each module's private names can
    change without looking elsewhere."""
    bad = []
    for m in MODULES:
        for target, names, line in imports(m):
            if target == "tcnet.store" or target.startswith("tcnet.store."):
                hidden = [n for n in names if n.startswith("_")]
                if any(part.startswith("_") for part in target.split(".")) or hidden:
                    bad.append(f"{m}:{line} imports {target}" + (f" ({', '.join(hidden)})" if hidden else ""))
    assert not bad, "private names taken from tcnet.store modules:\n" + "\n".join(bad)


def test_the_checks_see_imports():
    """The parser finds what the checks look for (a check that sees nothing passes vacuously)."""
    assert len(STORE) >= 10 and "tcnet.run" in MODULES and "tcnet.resume" in MODULES
    assert ("tcnet.run", ("RunResult", "run"), 6) in imports("tcnet.resume")
    assert any(t == "tcnet.store.hdf5" for t, _, _ in imports("tcnet.store.writer"))
    assert any(t == "tcnet.store" for t, _, _ in imports("tcnet.cli", top_level=True))


def test_the_thread_policy_lives_in_one_module():
    """Which BLAS thread variables exist and what a worker sets are said in tcnet/threads.py only;
    run, study workers and SIMPL's E-step read them from there."""
    sources = [p for p in (*ROOT.joinpath("tcnet").rglob("*.py"), *ROOT.joinpath("plugins").rglob("*.py"))]
    naming = sorted(str(p.relative_to(ROOT)) for p in sources if "OPENBLAS_NUM_THREADS" in p.read_text())
    assert naming == ["tcnet/threads.py"]
    for module in ("tcnet.run", "tcnet.study.worker", "tcnet_plugins.simpl.estep"):
        assert "tcnet.threads" in [name for name, _, _ in imports(module)], module
