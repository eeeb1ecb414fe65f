"""The API's layout: routes map records through `chorus.api.views` and share writes through `chorus.api.changes`.

A route importing another route ties their modules together (and, before,
made every route import its neighbours' wire mappings); this keeps them apart.
"""

from __future__ import annotations

import ast
from pathlib import Path

import chorus.api.routes

ROUTES = Path(chorus.api.routes.__file__).parent


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module is not None:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def test_no_route_module_imports_another_route_module() -> None:
    modules = sorted(p for p in ROUTES.glob("*.py") if p.name != "__init__.py")
    assert modules
    offending = {
        p.name: sorted(m for m in _imported_modules(p) if m.startswith("chorus.api.routes"))
        for p in modules
        if any(m.startswith("chorus.api.routes") for m in _imported_modules(p))
    }
    assert offending == {}, "routes import chorus.api.views / chorus.api.changes, never another route"
