"""The import graph of `extensibility`, read from the source: no circle, and no module imports
a layer above its own (docs/architecture.md shows the same layers).

Every import counts, also one inside a function or under TYPE_CHECKING: a lazy import is
still a dependency, and a circle of lazy imports is still a circle."""

from __future__ import annotations

import ast
from pathlib import Path

import extensibility

PACKAGE = Path(extensibility.__file__).parent

# lowest first; a module may import its own layer and the ones before it
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("foundation", ("extensibility", "errors", "redact", "log", "inputs", "fingerprint",
                    "image", "server_command", "settings", "safety", "process", "faults",
                    "boot", "overlay", "compile_child", "conda", "conda.names",
                    "conda.refresh_names", "installers", "lockfile", "remote.backend",
                    "remote.tarstream", "remote.archive", "remote.manifest",
                    "remote.relocate")),
    ("request and cache", ("requirements", "request", "store", "activation", "cleanup",
                           "compile", "consistency", "policy", "offline", "protection",
                           "installers.config", "installers.options", "conda.file",
                           "conda.translate", "conda.channels", "conda.prefix",
                           "conda.request", "target", "lockfile.read", "lockfile.write",
                           "blame")),
    ("one start", ("start", "key", "resolve", "warm", "layouts", "conda.layouts",
                   "installers.base", "installers.pip", "installers.uv", "installers.choice",
                   "lockfile.resolution", "libpath")),
    ("remote cache", ("remote", "remote.azure", "remote.restore", "remote.cache",
                      "remote.publish", "remote.transfer", "remote.inventory")),
    ("pipeline", ("build", "pipeline", "handoff")),
    ("command line", ("cli", "__main__", "commands", "commands.*")),
)


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[:len(package.split(".")) - node.level + 1]
                    target = ".".join([*base, *([node.module] if node.module else [])])
                else:
                    target = node.module or ""
                candidates = [target, *(f"{target}.{alias.name}" for alias in node.names)]
            elif isinstance(node, ast.Import):
                candidates = [alias.name for alias in node.names]
            else:
                continue
            graph[name].update(c for c in candidates if c in modules and c != name)
    return graph


def layer_of(module: str) -> int:
    short = module.removeprefix("extensibility.") if module != "extensibility" else module
    for index, (_, members) in enumerate(LAYERS):
        for member in members:
            if short == member or (member.endswith(".*") and
                                   short.startswith(member[:-1])):
                return index
    raise AssertionError(f"{module} is in no layer: add it to LAYERS (and to "
                         "docs/architecture.md)")


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in sorted(graph[node]):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_graph_sees_lazy_and_type_checking_imports() -> None:
    graph = import_graph()
    assert "extensibility.build" in graph["extensibility.pipeline"]  # inside a function
    assert "extensibility.remote.cache" in graph["extensibility.pipeline"]  # TYPE_CHECKING
    assert "extensibility.installers.uv" in graph["extensibility.installers.choice"]


def test_no_import_circles() -> None:
    assert circles(import_graph()) == []


def test_the_circle_finder_finds_a_circle() -> None:
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_every_module_has_a_layer_and_imports_none_above_it() -> None:
    upward = [f"{module} ({LAYERS[layer_of(module)][0]}) imports {other} "
              f"({LAYERS[layer_of(other)][0]})"
              for module, imports in sorted(import_graph().items()) for other in sorted(imports)
              if layer_of(other) > layer_of(module)]
    assert upward == []


def test_the_domain_knows_no_command_line() -> None:
    cli = {m for m in import_graph() if layer_of(m) == len(LAYERS) - 1}
    leaks = [f"{module} imports {other}" for module, imports in sorted(import_graph().items())
             if module not in cli for other in sorted(imports & cli)]
    assert leaks == []
