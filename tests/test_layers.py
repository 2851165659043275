"""The import rules of the code base, checked from the source: floors run one way, no module cycles."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Each package may import the packages on lower floors (and data, the sample KB), never one above or beside.
FLOORS = {"kb": 0, "ingest": 1, "retriever": 1, "eval": 2, "insights": 2, "ui": 3, "api": 3}
ALLOWED_EXTRA = {"data"}
# Shipped to be used alone: imports nothing from the project (tests/test_layers.py checks).
STANDALONE = ("kb_client",)


def imports_of(path: Path, runtime_only: bool = False) -> set[str]:
    """Top-level project modules imported by path (absolute imports, any place in the file); runtime_only leaves
    out those under `if TYPE_CHECKING:` (annotations only: no import at run time, so no cycle)."""
    out = set()
    tree = ast.parse(path.read_text(), str(path))
    typing_only = {
        id(n)
        for block in ast.walk(tree)
        if isinstance(block, ast.If) and ast.unparse(block.test).endswith("TYPE_CHECKING")
        for stmt in block.body
        for n in ast.walk(stmt)
    }
    for node in ast.walk(tree):
        if runtime_only and id(node) in typing_only:
            continue
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
    graph = {
        m: {
            i
            for i in imports_of(p, runtime_only=True)
            if i in modules and i != m and not m.startswith(i + ".") and not i.endswith("__init__")
        }
        for m, p in modules.items()
    }
    # A package's __init__ re-exports its modules; cycles through it are the package's public surface, not a loop.
    graph = {m: {i for i in deps if i not in FLOORS} for m, deps in graph.items()}
    seen: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> None:
        seen[m] = 1
        stack.append(m)
        for d in graph.get(m, ()):
            if seen.get(d) == 1:
                raise AssertionError("import cycle: " + " -> ".join(stack[stack.index(d) :] + [d]))
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


def private_names_defined_in(tree: ast.AST) -> set[str]:
    """Names starting with one underscore that a module defines: functions, classes, assignments, attributes set
    on self (its classes' private state) and parameters."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            names.add(node.attr)
    return {n for n in names if n.startswith("_") and not n.startswith("__")}


@pytest.mark.parametrize("package", sorted(FLOORS))
def test_no_module_reaches_into_another_modules_private_names(package):
    """`x._name` is used only where _name is the module's own, and nothing imports a private name: each room
    is entered through its public door."""
    bad = []
    for path in package_files(package):
        tree = ast.parse(path.read_text(), str(path))
        own = private_names_defined_in(tree)
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
                and node.attr not in own
            ):
                bad.append(f"{path.relative_to(ROOT)}:{node.lineno} uses {ast.unparse(node)}")
            if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] in FLOORS:
                bad += [
                    f"{path.relative_to(ROOT)}:{node.lineno} imports {a.name} from {node.module}"
                    for a in node.names
                    if a.name.startswith("_") and not a.name.startswith("__")
                ]
    assert not bad, bad


def test_only_kb_database_opens_sqlite_connections():
    """kb/database.py is the one place that opens a connection to kb.sqlite (or a file of its shape); everything
    else asks it, so pragmas, timeouts, read-only fallbacks and error messages are decided once."""
    owners = {
        ROOT / "kb" / "database.py",
        ROOT / "api" / "keys.py",
    }  # the API key store: a file of its own, outside every KB
    bad = []
    for package in FLOORS:
        for path in package_files(package):
            if path in owners:
                continue
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Call) and ast.unparse(node.func) in ("sqlite3.connect", "connect"):
                    bad.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not bad, bad


def test_the_cli_and_the_app_do_not_import_each_other():
    """ui/cli and ui/app share only ui.launch and ui.questions: each room can change without the other."""
    bad = []
    for room, other in (("cli", "ui.app"), ("app", "ui.cli")):
        for path in package_files(f"ui/{room}"):
            bad += [
                f"{path.relative_to(ROOT)} imports {m}" for m in imports_of(path) if m == other or m.startswith(other + ".")
            ]
    assert not bad, bad


def test_every_package_folder_is_shipped():
    """pyproject.toml lists packages by hand; a new subpackage missing there would work from a checkout and be
    absent from an installed wheel."""
    import tomllib

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    folders = {
        ".".join(path.parent.relative_to(ROOT).parts)
        for package in (*FLOORS, *STANDALONE)
        for path in (ROOT / package).rglob("*.py")
        if "__pycache__" not in path.parts
    }
    assert folders <= listed, sorted(folders - listed)


@pytest.mark.parametrize("package", STANDALONE)
def test_standalone_packages_import_nothing_from_the_project(package):
    """kb_client ships to users of the HTTP API alone: no import of another project package, at any place."""
    project = set(FLOORS) | ALLOWED_EXTRA | {"bench", "tests", *STANDALONE}
    files = package_files(package)
    assert files, f"{package}/ holds no Python files"
    bad = [
        f"{path.relative_to(ROOT)} imports {m}"
        for path in files
        for m in imports_of(path)
        if m.split(".")[0] in project - {package}
    ]
    assert not bad, bad
