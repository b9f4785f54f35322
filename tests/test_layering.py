"""The core stays pure: it imports only the standard library and itself."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import textback.core

CORE = Path(textback.core.__file__).parent


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_core_imports_only_stdlib_and_core() -> None:
    """No IO layer, third-party package or shell module is imported by textback/core."""
    offenders = {
        f"{path.name}: {name}"
        for path in sorted(CORE.glob("*.py"))
        for name in imported_modules(path)
        if not name.startswith("textback.core")
        and name.split(".")[0] not in sys.stdlib_module_names
    }
    assert offenders == set()


def test_core_does_not_use_asyncio_or_clocks() -> None:
    """Time is an input: the core never imports asyncio or time."""
    used = set().union(*(imported_modules(p) for p in CORE.glob("*.py")))
    assert used.isdisjoint({"asyncio", "time", "socket", "random"})
