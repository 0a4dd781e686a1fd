"""The package's import graph: no circles, and no library module imports the CLI or the benchmarks.

Read from the source with ``ast`` (nothing is imported). An import inside a function
counts too: it runs later, but it still ties the two modules together.
"""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "neuronedit_tf"


def _modules():
    """``{"neuronedit_tf.x.y": path}`` for every module of the package."""
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


MODULES = _modules()


def _owner(name):
    """The package module that ``import name`` (or ``from x import name``) loads."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name


def _is_main_block(node):
    test = getattr(node, "test", None)
    return (isinstance(node, ast.If) and isinstance(test, ast.Compare)
            and isinstance(test.left, ast.Name) and test.left.id == "__name__")


def _imports(module, path):
    """``{imported package module: "module" | "function"}``: where ``module`` imports it."""
    found = {}

    def visit(node, level):
        for child in ast.iter_child_nodes(node):
            where = level
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)) \
                    or _is_main_block(child):
                where = "function"
            names = []
            if isinstance(child, ast.Import):
                names = [alias.name for alias in child.names]
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    anchor = module.split(".")[: len(module.split(".")) - child.level
                                               + (path.name == "__init__.py")]
                    base = ".".join(anchor + ([base] if base else []))
                names = [f"{base}.{alias.name}" for alias in child.names]
            for name in names:
                owner = _owner(name) if name.startswith("neuronedit_tf") else None
                # importing a.b imports its package a: not an edge back up
                if owner and owner != module and not module.startswith(owner + "."):
                    found[owner] = "module" if "module" in (found.get(owner), where) else where
            visit(child, where)

    visit(ast.parse(path.read_text()), "module")
    return found


IMPORTS = {module: _imports(module, path) for module, path in MODULES.items()}


def _circles(levels):
    """The strongly connected components (more than one module) of the graph of ``levels``."""
    graph = {m: [d for d, where in deps.items() if where in levels] for m, deps in IMPORTS.items()}
    order, low, stack, on_stack, circles = {}, {}, [], set(), []

    def connect(node):
        order[node] = low[node] = len(order)
        stack.append(node)
        on_stack.add(node)
        for other in graph[node]:
            if other not in order:
                connect(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], order[other])
        if low[node] == order[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                circles.append(component)

    for node in graph:
        if node not in order:
            connect(node)
    return circles


def test_the_graph_sees_the_package():
    assert {"neuronedit_tf.zoo", "neuronedit_tf.cli", "neuronedit_tf.data.tables"} <= set(MODULES)
    assert IMPORTS["neuronedit_tf.cli"]["neuronedit_tf.bench.presets"] == "function"
    assert IMPORTS["neuronedit_tf.pl"]["neuronedit_tf.plotting"] == "module"


def test_no_module_level_import_circle():
    assert _circles({"module"}) == []


def test_no_import_circle_even_inside_functions():
    assert _circles({"module", "function"}) == []


@pytest.mark.parametrize("top", ["neuronedit_tf.cli", "neuronedit_tf.bench"])
def test_no_library_module_imports_the_cli_or_the_benchmarks(top):
    importers = sorted(
        module for module, deps in IMPORTS.items()
        if not (module == top or module.startswith(top + ".") or module == "neuronedit_tf.cli")
        and any(dep == top or dep.startswith(top + ".") for dep in deps)
    )
    assert importers == []


def test_no_module_imports_another_modules_private_names():
    offenders = []
    for module, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("neuronedit_tf"):
                offenders += [f"{module}: from {node.module} import {alias.name}"
                              for alias in node.names
                              if alias.name.startswith("_") and alias.name != "__version__"]
    assert offenders == []
