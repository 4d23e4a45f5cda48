"""Rules of the architecture that code review alone would miss (DESIGN.md, STYLE.md)."""

from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path

import nexapod

PACKAGE_ROOT = Path(nexapod.__file__).parent
NODE_MAY_IMPORT = {
    "nexapod.node",
    "nexapod.protocol",
    "nexapod.crypto",
    "nexapod.workloads",
    "nexapod.errors",
    "nexapod.logs",
}
SANDBOX_MAY_IMPORT = {"nexapod.workloads", "nexapod.errors"}


def _nexapod_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return {name for name in names if name == "nexapod" or name.startswith("nexapod.")}


def _allowed(name: str, prefixes: set[str]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def test_node_agent_imports_no_coordinator_internals() -> None:
    offending = {
        f"{path.relative_to(PACKAGE_ROOT)}: {name}"
        for path in (PACKAGE_ROOT / "node").rglob("*.py")
        for name in _nexapod_imports(path)
        if not _allowed(name, NODE_MAY_IMPORT)
    }
    assert offending == set()


def test_code_run_in_the_sandbox_imports_only_workloads() -> None:
    offending = {
        f"{path.relative_to(PACKAGE_ROOT)}: {name}"
        for path in (PACKAGE_ROOT / "workloads").rglob("*.py")
        for name in _nexapod_imports(path)
        if not _allowed(name, SANDBOX_MAY_IMPORT | {"nexapod.crypto"})
    }
    assert offending == set()


def test_every_package_exports_a_sorted_public_api() -> None:
    for module_info in pkgutil.walk_packages([str(PACKAGE_ROOT)], prefix="nexapod."):
        if not module_info.ispkg:
            continue
        module = importlib.import_module(module_info.name)
        exported = getattr(module, "__all__", None)
        assert exported is not None, f"{module_info.name} has no __all__"
        for name in exported:
            assert hasattr(module, name), f"{module_info.name}.__all__ names missing {name}"
