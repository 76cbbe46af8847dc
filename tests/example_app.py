"""Load examples/web_app.py (a script, not a package) as a module for tests."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "web_app.py"


def load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bucketcore_demo_web_app", EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
