"""The layers of ``scheduler/`` import one way: core <- store / executors <- runtime / reporting <- daemon / cli.

Every module is parsed with ``ast`` (imports inside functions count too) and each import it makes is
checked against the layer it lives in.
"""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "scheduler"

# The subpackages a layer may import, besides itself.
MAY_IMPORT = {
    "core": set(),
    "store": {"core"},
    "executors": {"core"},
    "runtime": {"core", "store", "executors"},
    "reporting": {"core", "store"},
    "daemon": {"core", "store", "executors", "runtime", "reporting"},
    "cli": {"core", "store", "executors", "runtime", "reporting", "daemon"},
}
# What no module of the package imports: the provider is an adapter over scheduler, never the reverse.
NOWHERE = ("provider", "pulumi", "pulumi_docker", "pulumi_kubernetes")
# What would give the pure core I/O: databases, processes, the network, files, metrics, terminals.
NOT_IN_CORE = ("sqlalchemy", "psycopg", "adbc_driver_sqlite", "sqlite3", "psutil", "docker", "kubernetes",
               "pynvml", "subprocess", "os", "shutil", "tempfile", "socket", "http", "urllib", "wsgiref",
               "threading", "multiprocessing", "prometheus_client", "pandas", "pyarrow", "typer", "rich",
               "apscheduler")
# specs checks a cron expression with APScheduler's parser, which reads nothing and starts nothing.
CORE_MAY_ALSO = ("apscheduler.triggers",)
# Calls that touch files; yaml in the core parses text it is given.
FILE_CALLS = {"open", "read_text", "read_bytes", "write_text", "write_bytes", "mkdir", "unlink", "rmdir",
              "iterdir", "rglob", "touch", "rename"}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(name: str, is_package: bool, tree: ast.AST) -> list[str]:
    """Every module ``name`` imports, relative imports resolved to absolute names."""
    package = name if is_package else name.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                base = node.module
            else:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([node.module] if node.module else []))
            # `from . import x` may name a module: count base.x, which says as much as base does
            found += [f"{base}.{alias.name}" for alias in node.names] if node.module is None else [base]
    return found


def layer_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "scheduler" and len(parts) > 1 else None


def is_within(module: str, roots) -> bool:
    return any(module == root or module.startswith(root + ".") for root in roots)


def violations(name: str, source: str, is_package: bool = False) -> list[str]:
    """What module ``name`` (its text: ``source``) imports across the layers the wrong way."""
    layer = layer_of(name)
    tree = ast.parse(source)
    found = []
    for target in imported_modules(name, is_package, tree):
        if is_within(target, NOWHERE):
            found.append(f"{name} imports {target}")
        elif target.startswith("scheduler.") and layer_of(target) not in {layer, *MAY_IMPORT[layer]}:
            found.append(f"{name} ({layer}) imports {target} ({layer_of(target)})")
        elif layer == "core" and is_within(target, NOT_IN_CORE) and not is_within(target, CORE_MAY_ALSO):
            found.append(f"{name} (core) imports {target}")
    if layer == "core":
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                called = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
                if called in FILE_CALLS:
                    found.append(f"{name} (core) calls {called}() on line {node.lineno}")
    return found


def package_modules() -> list[Path]:
    # demo_assets are the user's scripts that the demo runs, not part of the package's code
    return sorted(p for p in PACKAGE.rglob("*.py") if "demo_assets" not in p.parts)


def test_every_module_lives_in_a_layer():
    stray = [module_name(p) for p in package_modules()
             if p != PACKAGE / "__init__.py" and layer_of(module_name(p)) not in MAY_IMPORT]
    assert stray == [], f"modules outside the layers {sorted(MAY_IMPORT)}: {stray}"


@pytest.mark.parametrize("path", package_modules(), ids=lambda p: module_name(p))
def test_imports_flow_one_way(path):
    name = module_name(path)
    if layer_of(name) is None:
        assert not [t for t in imported_modules(name, True, ast.parse(path.read_text()))
                    if t.startswith("scheduler.") or is_within(t, NOWHERE)], "scheduler/__init__.py stays empty"
        return
    assert violations(name, path.read_text(), path.name == "__init__.py") == []


@pytest.mark.parametrize("name, source, expected", [
    ("scheduler.core.x", "from ..store.store import Store", "scheduler.core.x (core) imports scheduler.store.store (store)"),
    ("scheduler.core.x", "def f():\n    import sqlalchemy", "scheduler.core.x (core) imports sqlalchemy"),
    ("scheduler.core.x", "import subprocess", "scheduler.core.x (core) imports subprocess"),
    ("scheduler.core.x", "from pathlib import Path\nPath('a').read_text()", "scheduler.core.x (core) calls read_text() on line 2"),
    ("scheduler.store.x", "from ..runtime import engine", "scheduler.store.x (store) imports scheduler.runtime (runtime)"),
    ("scheduler.executors.x", "from ..store.store import Store", "scheduler.executors.x (executors) imports scheduler.store.store (store)"),
    ("scheduler.reporting.x", "from ..runtime.context import AppContext", "scheduler.reporting.x (reporting) imports scheduler.runtime.context (runtime)"),
    ("scheduler.daemon.x", "from ..cli.main import app", "scheduler.daemon.x (daemon) imports scheduler.cli.main (cli)"),
    ("scheduler.cli.x", "import provider.base", "scheduler.cli.x imports provider.base"),
    ("scheduler.runtime.x", "from pulumi import automation", "scheduler.runtime.x imports pulumi"),
])
def test_a_wrong_way_import_is_named(name, source, expected):
    assert violations(name, source) == [expected]


@pytest.mark.parametrize("name, source", [
    ("scheduler.core.x", "from .specs import JobSpec\nimport numpy\nimport yaml"),
    ("scheduler.core.specs", "def f():\n    from apscheduler.triggers.cron import CronTrigger"),
    ("scheduler.runtime.x", "from ..store import schema as db\nfrom ..executors import make_executor"),
    ("scheduler.cli.x", "from ..daemon.loop import Daemon\nimport subprocess"),
])
def test_a_right_way_import_passes(name, source):
    assert violations(name, source) == []

