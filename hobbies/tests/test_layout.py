"""The apps depend one way. Run alone: `python -m pytest hobbies/tests/test_layout.py -q`.

Reads every module of the project (tests and migrations aside) with `ast`, without importing it,
and checks the layers, lowest first:

    hobbies edge helpers (errors, parsing, ratelimit, http, middleware, admin_base, cache, queries,
      loopdb, metrics, logs)
      → accounts → communities → chat → analytics
        → hobbies top (settings, urls, asgi, health): wires the apps together

A module imports only from its own layer or lower ones, no modules import each other in a
cycle, and imports sit at the top of a module (apps' `ready()` connecting receivers aside).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
APPS = ("accounts", "communities", "chat", "analytics")
EDGE = {
    "errors",
    "parsing",
    "ratelimit",
    "http",
    "middleware",
    "admin_base",
    "cache",
    "queries",
    "loopdb",
    "metrics",
    "logs",
}
FIRST_PARTY = ("hobbies", *APPS)


def layer(module: str) -> int:
    top, _, rest = module.partition(".")
    if top == "hobbies":
        return 0 if rest.split(".")[0] in EDGE else 10
    return 1 + APPS.index(top)


def modules() -> dict[str, Path]:
    found = {}
    for top in FIRST_PARTY:
        for path in (ROOT / top).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if "tests" in parts or "migrations" in parts:
                continue
            name = ".".join(p for p in parts if p != "__init__")
            found[name] = path
    return found


def imports(path: Path, known: set[str]) -> tuple[set[str], list[str]]:
    """First-party modules imported by `path`, and the imports found inside functions."""
    tree = ast.parse(path.read_text(), filename=str(path))
    inside_functions: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            for inner in ast.walk(node):
                if isinstance(inner, ast.Import | ast.ImportFrom):
                    inside_functions.append(f"{path.name}:{inner.lineno} {ast.unparse(inner)}")
    targets: set[str] = set()
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # `from chat import events` names a module; `from chat.models import X` a symbol.
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                names.append(full if full in known else node.module)
        for name in names:
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name:
                targets.add(name)
    return targets, inside_functions


def graph() -> tuple[dict[str, set[str]], dict[str, list[str]]]:
    found = modules()
    edges: dict[str, set[str]] = {}
    local: dict[str, list[str]] = {}
    for name, path in found.items():
        targets, inside = imports(path, set(found))
        edges[name] = {t for t in targets if t != name and not name.startswith(t + ".")}
        if inside:
            local[name] = inside
    return edges, local


def test_no_module_imports_from_a_higher_layer():
    edges, _ = graph()
    upward = sorted(
        f"{source} → {target}"
        for source, targets in edges.items()
        for target in targets
        if layer(target) > layer(source)
    )
    assert upward == [], "lower layers import higher ones:\n" + "\n".join(upward)


def test_modules_import_each_other_in_no_cycle():
    edges, _ = graph()
    # Tarjan's strongly connected components: any component of two or more is a cycle.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in edges.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    assert cycles == [], f"import cycles: {cycles}"


def test_imports_sit_at_the_top_of_modules():
    _, local = graph()
    allowed = {"accounts.apps", "chat.apps"}  # ready() connects the receivers
    assert {k: v for k, v in local.items() if k not in allowed} == {}


def test_the_graph_sees_the_layers():
    """The walk itself finds the edges it should (so the checks above cannot pass vacuously)."""
    edges, _ = graph()
    assert "communities.models" in edges["chat.models"]
    assert "accounts.models" in edges["communities.policy"]
    assert "hobbies.errors" in edges["chat.services"]
    assert layer("hobbies.urls") > layer("chat.views") > layer("communities.views")
