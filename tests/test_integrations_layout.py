"""Where the integrations live (docs/design.md §1, §5): the rules of the house.

The core imports nothing from ``bucketcore.integrations``; each integration
imports on its own in a fresh interpreter (no import cycle); the short
import paths (``bucketcore.flask``, ...) re-export exactly the same names.
"""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "bucketcore"
CORE = ["limit", "decision", "errors", "_keys", "_gcra", "limiter", "store", "memory"]
INTEGRATIONS = ["http", "answers", "policy", "paths", "hooks", "guard", "flask", "asgi", "fastapi"]
INTEGRATIONS += ["prometheus", "cli", "django", "outbound", "httpx", "requests"]
SHORT_PATHS = ["flask", "fastapi", "asgi", "guard", "hooks", "prometheus", "cli", "django"]
SHORT_PATHS += ["httpx", "requests"]


def imported_modules(path: Path) -> set[str]:
    modules: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module is not None:
            modules.add(node.module)
    return modules


@pytest.mark.parametrize("module", CORE)
def test_the_core_imports_nothing_from_the_integrations(module: str) -> None:
    imported = imported_modules(PACKAGE / f"{module}.py")
    assert not {name for name in imported if name.startswith("bucketcore.integrations")}


@pytest.mark.parametrize("module", INTEGRATIONS)
def test_each_integration_imports_alone_in_a_fresh_interpreter(module: str) -> None:
    code = f"import bucketcore.integrations.{module}"
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)


@pytest.mark.parametrize("module", SHORT_PATHS)
def test_the_short_import_path_re_exports_the_same_names(module: str) -> None:
    short = importlib.import_module(f"bucketcore.{module}")
    home = importlib.import_module(f"bucketcore.integrations.{module}")
    assert short.__all__ == home.__all__
    for name in home.__all__:
        assert getattr(short, name) is getattr(home, name)
