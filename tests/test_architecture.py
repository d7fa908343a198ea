"""The product's rooms and their walls, checked from the source (no imports run).

Rules (docs/ARCHITECTURE.md): no import cycles between product modules; ``sam3_video``
imports none of the service rooms; ``api`` does not import ``deploy``; ``client`` needs
only its HTTP library; every ``torch.load`` passes ``weights_only=True``; the product
never points at files outside the repository.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ROOMS = ("sam3_video", "jobstore", "api", "worker", "client", "deploy")


def product_modules() -> dict[str, Path]:
    modules = {}
    for room in ROOMS:
        for path in (ROOT / room).rglob("*.py"):
            if "migrations" in path.parts and path.parent.name == "versions":
                continue
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join(parts)] = path
    return modules


MODULES = product_modules()


def resolve(name: str) -> str | None:
    """The product module an import name refers to (a package or a module), if any."""
    while name:
        if name in MODULES:
            return name
        name = name.rpartition(".")[0]
    return None


def imports_of(module: str, path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            # `from pkg import mod` depends on pkg.mod; `from pkg import name` on pkg.
            names = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base
                for alias in node.names
            ]
        for name in names:
            target = resolve(name)
            if target and target != module:
                found.add(target)
    return found


GRAPH = {module: imports_of(module, path) for module, path in MODULES.items()}


def room(module: str) -> str:
    return module.split(".")[0]


def test_there_are_product_modules():
    assert len(MODULES) > 50
    assert "sam3_video.train" in MODULES


def test_no_import_cycles():
    # Tarjan's strongly connected components: any component of two or more is a cycle.
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []
    counter = [0]

    def visit(node):
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in GRAPH[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            # A package importing its own submodules (an __init__ re-export) is no cycle
            # unless a submodule imports the package back; those show up as components too.
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in GRAPH:
        if node not in index:
            visit(node)
    assert cycles == []


@pytest.mark.parametrize(
    "source, forbidden",
    [
        ("sam3_video", {"jobstore", "api", "worker", "client", "deploy"}),
        ("jobstore", {"api", "worker", "client", "deploy"}),
        ("api", {"worker", "deploy", "client"}),
        ("worker", {"api", "deploy", "client"}),
        ("client", {"sam3_video", "jobstore", "api", "worker", "deploy"}),
    ],
)
def test_rooms_import_only_downwards(source, forbidden):
    wrong = sorted(
        f"{module} -> {target}"
        for module, targets in GRAPH.items()
        if room(module) == source
        for target in targets
        if room(target) in forbidden
    )
    assert wrong == []


def product_files(*suffixes):
    for path in ROOT.rglob("*"):
        rel = path.relative_to(ROOT)
        if rel.parts[0] in {".git", ".venv", "tests", "node_modules"} or "__pycache__" in rel.parts:
            continue
        if path.is_file() and path.suffix in suffixes:
            yield path


def test_every_torch_load_is_weights_only():
    offenders = []
    for path in product_files(".py"):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "load"
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id == "torch"
            ):
                ok = any(
                    kw.arg == "weights_only" and isinstance(kw.value, ast.Constant) and kw.value.value is True
                    for kw in node.keywords
                )
                if not ok:
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert offenders == []


def test_product_points_at_no_file_outside_the_repository():
    offenders = [
        str(path.relative_to(ROOT))
        for path in product_files(".py", ".md")
        if "shared/" in path.read_text() or "DESIGN.md" in path.read_text()
    ]
    assert offenders == []
