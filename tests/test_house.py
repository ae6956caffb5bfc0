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


# --------------------------------------------------------------------------------------
# One home per concept, one place per fact.

ROOT = PACKAGE.parent


def imported_modules(tree: ast.Module) -> set[str]:
    """Every top-level module name ``tree`` imports, anywhere in it (inside functions too)."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            found.add(node.module.split(".")[0])
    return found


def test_only_keys_computes_what_a_result_depends_on():
    """Result keys are made in keys.py alone; assets.py hashes only to check a download against its
    published SHA-256."""
    hashing = sorted(name for name, tree in modules().items() if "hashlib" in imported_modules(tree))
    assert hashing == ["assets", "keys"]


def test_only_the_cluster_module_knows_dask():
    users = sorted(name for name, tree in modules().items() if imported_modules(tree) & {"dask", "distributed"})
    assert users == ["cluster"]


def test_no_class_name_is_defined_twice():
    seen: dict[str, list[str]] = {}
    for name, tree in modules().items():
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                seen.setdefault(node.name, []).append(name)
    assert {cls: where for cls, where in seen.items() if len(where) > 1} == {}


def test_user_errors_are_one_tuple():
    defined = [name for name, tree in modules().items() for node in tree.body
               if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "USER_ERRORS" for t in node.targets)]
    assert defined == ["files"]


def test_every_describe_returns_text():
    """A name means one kind of thing: ``describe`` (and ``describe_*``) always returns a sentence."""
    odd = [f"{name}.{node.name} -> {ast.unparse(node.returns) if node.returns else 'unannotated'}"
           for name, tree in modules().items() for node in ast.walk(tree)
           if isinstance(node, ast.FunctionDef) and node.name.startswith("describe")
           and not (node.returns is not None and ast.unparse(node.returns) == "str")]
    assert odd == []


def test_the_page_needs_neither_the_notebooks_nor_torch():
    tree = modules()["page"]
    assert "notebook" not in imports_of("page", tree) and "torch" not in imported_modules(tree)


def test_check_steps_checks_steps_only():
    """Counts that are not steps (a batch, a network's channels) have checks of their own."""
    calls = [node for tree in modules().values() for node in ast.walk(tree)
             if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) == "check_steps"]
    named = [ast.unparse(call.args[1]) if len(call.args) > 1 else "'steps'" for call in calls]
    assert [n for n in named if not (n.startswith(("'", '"')) and any(w in n for w in ("steps", "every", "history")))] \
        == []


def profile_facts() -> dict[str, object]:
    """profiles.py's constants: name -> value (texts, numbers and tuples of them)."""
    tree = modules()["profiles"]
    facts = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name) and node.targets[0].id.isupper():
            try:
                facts[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                pass
    return facts


def literal(node):
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return NotImplemented


def restated_defaults(name: str, tree: ast.Module, facts: dict) -> list[str]:
    """Where module ``name`` states a value of profiles.py again: a constant of the same name (or of a name
    sharing a word and the value), a parameter, a ``.get`` fallback or a command-line default equal to the
    fact its name says, or the name of a folder or file profiles.py fixes."""
    by_option = {key.lower(): value for key, value in facts.items()}
    by_option["profile"] = facts.get("DEFAULT_PROFILE")
    files = {facts[key] for key in ("FIGURES", "SETUP_FILE", "FIGURE_METADATA") if key in facts}
    found = []
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name) and literal(node.value) is not NotImplemented:
            constant, value = node.targets[0].id, literal(node.value)
            alike = [key for key, fact in facts.items() if fact == value and type(fact) is type(value)
                     and set(key.split("_")) & set(constant.split("_"))]
            if constant in facts or alike:
                found.append(f"{name}: {constant} = {value!r}")
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            arguments = [*node.args.posonlyargs, *node.args.args]
            pairs = list(zip(arguments[len(arguments) - len(node.args.defaults):], node.args.defaults))
            pairs += [(a, d) for a, d in zip(node.args.kwonlyargs, node.args.kw_defaults) if d is not None]
            for argument, default in pairs:
                if argument.arg in by_option and literal(default) == by_option[argument.arg]:
                    found.append(f"{name}.{node.name}({argument.arg}={ast.unparse(default)})")
        elif isinstance(node, ast.Call) and len(node.args) == 2 and getattr(node.func, "attr", None) in ("get", "setdefault"):
            key, fallback = (literal(a) for a in node.args)
            if isinstance(key, str) and key in by_option and fallback == by_option[key]:
                found.append(f"{name}: .{node.func.attr}({key!r}, {fallback!r})")
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "add_argument" and node.args:
            option = str(literal(node.args[0])).lstrip("-").replace("-", "_")
            default = next((k.value for k in node.keywords if k.arg == "default"), None)
            if option in by_option and default is not None and literal(default) == by_option[option]:
                found.append(f"{name}: --{option} default {ast.unparse(default)}")
        elif isinstance(node, ast.Constant) and node.value in files:
            found.append(f"{name}: {node.value!r}")
    return found


def test_no_module_but_profiles_states_a_default_of_profiles():
    import json

    facts = profile_facts()
    found = [where for name, tree in modules().items() if name != "profiles"
             for where in restated_defaults(name, tree, facts)]
    for path in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        cells = [c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]
        code = "\n".join("".join(c["source"]) for c in cells if not "".join(c["source"]).lstrip().startswith("%"))
        found += restated_defaults(path.stem, ast.parse(code), {k: facts[k] for k in ("FIGURES",) if k in facts})
    for line in (ROOT / "Makefile").read_text().splitlines():
        if line.startswith(("PROFILE ?=", "DEVICE ?=", "PRECISION ?=")) and line.split("?=")[1].strip():
            found.append(f"Makefile: {line}")
    assert found == []


def test_no_error_message_spells_out_a_list_of_choices_by_hand():
    """Messages name the choices from the tuple (or dict) that holds them, so that they cannot drift apart."""
    import re

    choices = {}
    for name, tree in modules().items():
        for node in tree.body:
            if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
                value = node.value
                items = value.elts if isinstance(value, ast.Tuple) else value.keys if isinstance(value, ast.Dict) else []
                words = [literal(item) for item in items]
                if len(words) >= 2 and all(isinstance(w, str) and w.isidentifier() for w in words):
                    choices[f"{name}.{node.targets[0].id}"] = words
    typed = []
    for name, tree in modules().items():
        for node in ast.walk(tree):
            if isinstance(node, ast.Raise) and node.exc is not None:
                text = " ".join(c.value for c in ast.walk(node.exc) if isinstance(c, ast.Constant) and isinstance(c.value, str))
                typed += [f"{name}: {text!r} lists {where}" for where, words in choices.items()
                          if all(re.search(rf"\b{re.escape(word)}\b", text) for word in words)]
    assert typed == []


def test_help_states_the_cores_above_which_a_cluster_starts(monkeypatch):
    from nst_lib import sizing
    from nst_lib.cli import build_parser

    monkeypatch.setattr(sizing, "IN_PROCESS_CORES", 7)
    sweep = build_parser()._subparsers._group_actions[0].choices["sweep"]
    assert "a local cluster above 7 cores" in " ".join(sweep.format_help().split())


# Methods that frameworks call by name (torch modules and autograd functions, a Dask worker plugin, nbclient).
CALLED_BY_NAME = {"forward", "backward", "setup", "start_kernel"}


def test_no_public_name_is_dead():
    """Every public function, class, constant and method of the library is used somewhere: by the library, a
    notebook, a bench or a test."""
    import json

    trees = modules()
    scripts = sorted((ROOT / "bench").glob("*.py")) + sorted((ROOT / "tests").glob("*.py"))
    sources = list(trees.values()) + [ast.parse(path.read_text()) for path in scripts]
    for path in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        cells = [c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]
        sources.append(ast.parse("\n".join("".join(c["source"]) for c in cells)))
    used = set()
    for tree in sources:
        for node in ast.walk(tree):
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
                used.add(node.id)
            elif isinstance(node, ast.Attribute):
                used.add(node.attr)
            elif isinstance(node, ast.alias):
                used.add(node.name.split(".")[-1])
            elif isinstance(node, ast.keyword) and node.arg:
                used.add(node.arg)
    dead = []
    for name, tree in trees.items():
        for node in tree.body:
            defined = []
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                defined.append(node.name)
            if isinstance(node, ast.Assign):
                defined += [t.id for t in node.targets if isinstance(t, ast.Name)]
            if isinstance(node, ast.ClassDef):
                defined += [f.name for f in node.body if isinstance(f, ast.FunctionDef) and f.name not in CALLED_BY_NAME]
            dead += [f"{name}.{d}" for d in defined if not d.startswith("_") and d not in used]
    assert dead == []
