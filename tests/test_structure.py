"""The shape of the code, read with ast over resbench/ and cli.py: every module under 400 lines, every function
under 50 lines of code (its docstring aside), and no import circle among resbench's modules."""

import ast
from pathlib import Path

from conftest import REPO

MAX_MODULE_LINES, MAX_FUNCTION_LINES = 400, 50
FILES = sorted((REPO / "resbench").rglob("*.py")) + [REPO / "cli.py"]
# Imports that run only when called and would otherwise close a circle, each with why it is there.
CALL_TIME_EDGES = {
    ("resbench._callable", "resbench.api"): "calling the modules resbench.sweep and resbench.report calls the "
                                            "api function of that name, imported on the call",
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in FILES if p.name != "cli.py" or p.parent != REPO}


def code_lines(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """Lines from `def` to the function's last line, less its docstring's."""
    lines = node.end_lineno - node.lineno + 1
    first = node.body[0]
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
        lines -= first.end_lineno - first.lineno + 1
    return lines


def _is_type_checking(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def _imports(tree: ast.AST):
    """Every import statement in the tree (inside functions too), less those under `if TYPE_CHECKING:`."""
    for node in ast.iter_child_nodes(tree):
        if _is_type_checking(node):
            yield from (n for s in node.orelse for n in _imports_of(s))
            continue
        yield from _imports_of(node)


def _imports_of(node: ast.AST):
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        yield node
    else:
        yield from _imports(node)


def _resolve(name: str) -> str | None:
    """The resbench module that importing `name` runs (a name inside a module: that module)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def imported_modules(name: str) -> set[str]:
    """The resbench modules that module `name` imports, with the packages whose __init__ those imports run."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in _imports(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        else:
            base = node.module or ""
            if node.level:  # relative: from the package, `level - 1` steps up
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(up + ([node.module] if node.module else []))
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
        for target in filter(None, map(_resolve, targets)):
            found.add(target)
            parent = target.rpartition(".")[0]
            while parent not in ("", "resbench"):  # importing a.b.c runs a.b's __init__ unless inside a.b
                if not (name + ".").startswith(parent + "."):
                    found.add(parent)
                parent = parent.rpartition(".")[0]
    found.discard(name)
    return {t for t in found if (name, t) not in CALL_TIME_EDGES}


def test_every_module_is_under_400_lines():
    long = {str(p.relative_to(REPO)): n for p in FILES if (n := len(p.read_text().splitlines())) >= MAX_MODULE_LINES}
    assert long == {}


def test_every_function_is_under_50_lines_of_code():
    long = {}
    for path in FILES:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and code_lines(node) >= MAX_FUNCTION_LINES:
                long[f"{path.relative_to(REPO)}:{node.lineno} {node.name}"] = code_lines(node)
    assert long == {}


def test_no_import_circle_among_resbench_modules():
    graph = {name: imported_modules(name) for name in MODULES}
    done, path = set(), []

    def visit(name: str) -> None:
        assert name not in path, "import circle: " + " -> ".join([*path[path.index(name):], name])
        if name in done:
            return
        path.append(name)
        for dep in sorted(graph[name]):
            visit(dep)
        path.pop()
        done.add(name)

    for name in sorted(graph):
        visit(name)
    # the walk saw the edges the package is built on, one way
    assert "resbench.sweep.cell" in graph["resbench.sweep.local"]
    assert "resbench.sweep.local" not in graph["resbench.sweep.cell"]
    assert "resbench.checkpoints.own" in graph["resbench.checkpoints"]


def test_the_checks_find_what_they_look_for(tmp_path):
    """The measures on made-up code: a docstring does not count, a TYPE_CHECKING import is no edge."""
    tree = ast.parse('def f():\n    """doc\n    more"""\n    a = 1\n    return a\n')
    assert code_lines(tree.body[0]) == 3
    tree = ast.parse("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import a\nelse:\n    import b\n"
                     "def g():\n    import c\n")
    assert sorted(a.names[0].name for a in _imports(tree) if isinstance(a, ast.Import)) == ["b", "c"]
