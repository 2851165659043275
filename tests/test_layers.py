"""The import rules of the code base, checked from the source: floors run one way, no module cycles."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Each package may import the packages on lower floors (and data, the sample KB), never one above or beside.
FLOORS = {"kb": 0, "ingest": 1, "retriever": 1, "eval": 2, "ui": 3, "api": 3}
ALLOWED_EXTRA = {"data"}


def imports_of(path: Path) -> set[str]:
    """Top-level project modules imported by path (absolute imports, any place in the file)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
    return out


def package_files(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py")) if (ROOT / package).is_dir() else []


@pytest.mark.parametrize("package", sorted(FLOORS))
def test_packages_import_only_lower_floors(package):
    bad = []
    for path in package_files(package):
        for module in imports_of(path):
            top = module.split(".")[0]
            if top in FLOORS and top != package and FLOORS[top] >= FLOORS[package]:
                bad.append(f"{path.relative_to(ROOT)} imports {module}")
    assert not bad, bad


def test_no_import_cycles_between_modules():
    modules = {}
    for package in FLOORS:
        for path in package_files(package):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
            modules[name] = path
    graph = {m: {i for i in imports_of(p) if i in modules and i != m and not m.startswith(i + ".")
                 and not i.endswith("__init__")} for m, p in modules.items()}
    # A package's __init__ re-exports its modules; cycles through it are the package's public surface, not a loop.
    graph = {m: {i for i in deps if i not in FLOORS} for m, deps in graph.items()}
    seen: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> None:
        seen[m] = 1
        stack.append(m)
        for d in graph.get(m, ()):
            if seen.get(d) == 1:
                raise AssertionError("import cycle: " + " -> ".join(stack[stack.index(d):] + [d]))
            if d not in seen:
                visit(d)
        stack.pop()
        seen[m] = 2

    for m in sorted(graph):
        if m not in seen:
            visit(m)


@pytest.mark.parametrize("package", sorted(FLOORS))
def test_packages_use_each_others_public_surface_only(package):
    """Another package is imported by its name (its __init__'s public surface), never by one of its modules."""
    bad = []
    for path in package_files(package):
        for module in imports_of(path):
            top = module.split(".")[0]
            if top in FLOORS and top != package and module != top:
                bad.append(f"{path.relative_to(ROOT)} imports {module}")
    assert not bad, bad
