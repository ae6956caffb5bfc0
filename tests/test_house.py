"""The shape of the library itself: what keeps it readable as it grows."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "nst_lib"
MAX_FUNCTION_LINES = 80
MAX_CLASS_LINES = 200


def modules() -> dict[str, ast.Module]:
    """Every module of the package by dotted name (``cli.options``, ``losses``, ...); a package's
    ``__init__`` goes by the package's name, the top one by ''."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        tree = ast.parse(path.read_text(), filename=str(path))
        tree.is_package = parts[-1] == "__init__"
        found[name] = tree
    return found


def imports_of(name: str, tree: ast.Module) -> set[str]:
    """The package's own modules that ``name`` imports (relative imports resolved)."""
    parts = name.split(".") if name else []
    package = parts if tree.is_package else parts[:-1]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package[: len(package) - (node.level - 1)] if node.level > 1 else package
            target = ".".join([*base, *(node.module.split(".") if node.module else [])])
            targets = [target] if node.module else [".".join([*base, alias.name]) for alias in node.names]
            found.update(t for t in targets if t)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("nst_lib"):
            found.add(node.module.removeprefix("nst_lib").lstrip("."))
    return found


def test_no_function_is_longer_than_a_screen_or_two():
    long = [
        f"{name}.{node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for name, tree in modules().items()
        for node in ast.walk(tree)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    ]
    assert long == []


def test_no_class_is_longer_than_a_few_screens():
    """A class that outgrows this holds more than one concept (a view and its controller, say)."""
    long = [
        f"{name}.{node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for name, tree in modules().items()
        for node in ast.walk(tree)
        if isinstance(node, ast.ClassDef) and node.end_lineno - node.lineno + 1 > MAX_CLASS_LINES
    ]
    assert long == []


def test_the_library_never_imports_the_command_line():
    offenders = [
        name
        for name, tree in modules().items()
        if name != "__main__"
        and not name.startswith("cli")
        and any(t == "cli" or t.startswith("cli.") for t in imports_of(name, tree))
    ]
    assert offenders == []


def test_no_import_cycle_among_the_modules():
    trees = modules()
    graph = {name: {t for t in imports_of(name, tree) if t in trees and t != name} for name, tree in trees.items()}
    cycles = []

    def visit(node, path):
        for target in graph[node]:
            if target in path:
                cycles.append(" -> ".join(path[path.index(target) :] + [target]))
            elif target not in done:
                visit(target, path + [target])
        done.add(node)

    done: set[str] = set()
    for start in graph:
        if start not in done:
            visit(start, [start])
    assert cycles == []


def test_style_scale_is_applied_only_where_the_loss_is_specified():
    users = [
        name
        for name, tree in modules().items()
        if any(isinstance(node, ast.Name) and node.id == "STYLE_SCALE" for node in ast.walk(tree))
    ]
    assert users == ["losses"]
