"""The import graph of the simpl package, read from its source with ast (nothing is imported):
it has no cycle, counting imports inside functions too (a lazy import hides a circle, it does not
remove it), and the E-step and M-step are functions of data and latent that know nothing of the
dynamics, the loss, the optimizer or the estimator built on them."""
import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import pytest

import tcnet_plugins.simpl

PACKAGE = "tcnet_plugins.simpl"
FOLDER = Path(tcnet_plugins.simpl.__file__).parent
MODULES = {p.stem: p for p in FOLDER.glob("*.py")}


def imported(node, module) -> list[str]:
    """The package's modules (stems; "__init__" for the package itself) that one import statement
    of `module` names: `from PACKAGE import sub` names the submodule sub where there is one."""
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
    else:
        base = node.module or ""
        if node.level:  # relative: from the package (or above) of `module`
            parts = f"{PACKAGE}.{module}".split(".")[: -node.level]
            base = ".".join(parts + ([base] if base else []))
        names = [f"{base}.{a.name}" if f"{base}.{a.name}"[len(PACKAGE) + 1 :] in MODULES else base
                 for a in node.names]
    out = []
    for name in names:
        if name == PACKAGE:
            out.append("__init__")
        elif name.startswith(PACKAGE + "."):
            out.append(name[len(PACKAGE) + 1 :].split(".")[0])
    return out


def graph() -> dict[str, set[str]]:
    """module -> the package's modules it imports, anywhere in its body."""
    edges = {}
    for stem, path in MODULES.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        edges[stem] = {m for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))
                       for m in imported(node, stem)} - {stem}
    return edges


def test_the_simpl_package_has_no_import_cycle():
    edges = graph()
    assert edges["optimizer"] >= {"dynamics", "estep", "loss"}  # the graph is read, not empty,
    assert "figures" in edges["cli"]  # and holds the imports inside functions
    try:
        order = list(TopologicalSorter(edges).static_order())
    except CycleError as err:
        pytest.fail(f"import cycle in {PACKAGE}: {' -> '.join(err.args[1])}")
    assert set(order) == set(MODULES)


@pytest.mark.parametrize("module", ["estep", "mstep"])
def test_the_em_steps_know_nothing_of_the_classes_built_on_them(module):
    assert not graph()[module] & {"__init__", "dynamics", "loss", "optimizer", "estimator", "cli"}

