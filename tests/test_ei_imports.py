"""The ei package's modules import each other without a cycle, lazy imports inside functions
included (model and trials once imported each other that way): read from the source with ast, so
a circle is found even where Python's import order happens to hide it."""
import ast
from pathlib import Path

PACKAGE = "tcnet_plugins.ei"
FOLDER = Path(__file__).resolve().parents[1] / "plugins" / "ei"


def imported_modules(path: Path, modules: set) -> set:
    """The modules of the package that the file at `path` imports, anywhere in it."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [(a.name, None) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level <= 1:
            base = PACKAGE + (f".{node.module}" if node.module else "") if node.level else node.module
            targets = [(base, a.name) for a in node.names]
        else:
            continue
        for base, name in targets:
            if base == PACKAGE:  # the package itself, or one of its modules by name
                found.add(name if name in modules else "__init__")
            elif base.startswith(PACKAGE + "."):
                found.add(base[len(PACKAGE) + 1:].split(".")[0])
    return found


def import_graph() -> dict:
    modules = {p.stem for p in FOLDER.glob("*.py")}
    return {m: imported_modules(FOLDER / f"{m}.py", modules) - {m} for m in modules}


def find_cycle(graph: dict) -> list | None:
    """One cycle of the directed graph (module -> the modules it imports) as a path whose first
    and last entries are the same, or None."""
    done, path = set(), []

    def visit(node):
        if node in path:
            return path[path.index(node):] + [node]
        if node in done:
            return None
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            cycle = visit(nxt)
            if cycle:
                return cycle
        path.pop()
        done.add(node)
        return None

    for start in sorted(graph):
        cycle = visit(start)
        if cycle:
            return cycle
    return None


def test_the_cycle_finder_finds_a_hidden_circle():
    assert find_cycle({"model": {"trials"}, "trials": {"model"}}) == ["model", "trials", "model"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_the_ei_package_has_no_import_cycle():
    graph = import_graph()
    assert {"model", "rules", "trials", "dynamics", "losses", "optimizers", "study", "figures", "cli"} <= set(graph)
    assert graph["model"] == {"trials"} and graph["trials"] == set()  # the integrators below the model
    assert find_cycle(graph) is None, f"import cycle in {PACKAGE}: {' -> '.join(find_cycle(graph))}"
