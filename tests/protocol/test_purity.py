"""app/protocol is pure: it imports only the standard library, pydantic and itself."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

PROTOCOL_DIR = Path(__file__).resolve().parents[2] / "app" / "protocol"
ALLOWED_THIRD_PARTY = {"pydantic"}
IO_MODULES = {"os", "io", "socket", "subprocess", "pathlib", "shutil", "urllib", "http", "asyncio", "sqlite3"}


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("path", sorted(PROTOCOL_DIR.glob("*.py")), ids=lambda p: p.name)
def test_protocol_module_imports_nothing_outside_itself(path: Path) -> None:
    for module in imported_modules(path):
        top = module.split(".")[0]
        if top == "app":
            assert module == "app.protocol" or module.startswith("app.protocol."), module
        else:
            assert top in sys.stdlib_module_names or top in ALLOWED_THIRD_PARTY, module
            assert top not in IO_MODULES, module
