"""The package's structure: no import cycle among its modules (imports under
``TYPE_CHECKING`` count: they are design ties too), and no module reads another
module's private attributes."""

from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "signalwire_calls"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """module -> the package modules it imports (any import statement, anywhere).
    Imports of a package's ``__init__`` are left out (it only re-exports)."""
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    packages = {_module_name(p) for p in PACKAGE.rglob("__init__.py")}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")
                    base = base[: len(base) - node.level + 1]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                candidates = [target] + [f"{target}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                candidates = [a.name for a in node.names]
            else:
                continue
            for candidate in candidates:
                if candidate in graph and candidate != name and candidate not in packages:
                    graph[name].add(candidate)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_no_import_cycle() -> None:
    graph = import_graph()
    assert "signalwire_calls._core" in graph
    assert "signalwire_calls.call" in graph["signalwire_calls._core"]
    assert cycles(graph) == []


def test_the_cycle_finder_finds_cycles() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]


# `obj._name` where obj is not self/cls: a read of some object's private attribute.
_PRIVATE_READ = re.compile(r"(?<![\w.])(?!self\b|cls\b)([a-z][\w]*)\.(_[a-z]\w*)")
# namedtuple's public methods are spelled with one underscore
_PUBLIC_UNDERSCORED = {"_replace", "_asdict", "_fields", "_make"}


def private_reads(source: str) -> list[str]:
    """Lines reading a private attribute that the same module does not define (a read
    of another module's private state)."""
    found = []
    for line in source.splitlines():
        code = line.split("#", 1)[0]
        for match in _PRIVATE_READ.finditer(code):
            attr = match.group(2)
            if attr in _PUBLIC_UNDERSCORED:
                continue
            defined_here = re.search(
                rf"(def {attr}\b|\bself\.{attr}\s*[:=]|^\s*{attr}\s*[:=]|[\"']{attr}[\"'])",
                source,
                re.M,
            )
            if defined_here is None:
                found.append(code.strip())
    return found


def test_no_module_reads_another_modules_private_attributes() -> None:
    offenders = [
        f"{path.relative_to(PACKAGE)}: {line}"
        for path in PACKAGE.rglob("*.py")
        for line in private_reads(path.read_text())
    ]
    assert offenders == []


def test_the_private_read_finder_finds_them() -> None:
    assert private_reads("x = handle._waiters\n") == ["x = handle._waiters"]
    own = "class A:\n    __slots__ = ('_x',)\n    def f(self, o):\n        return o._x\n"
    assert private_reads(own) == []
    assert private_reads("self._x = 1\ny = other._x\n") == []
