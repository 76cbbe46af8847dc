"""The Django demo (examples/django_app) as gunicorn serves it in tests.

Each response tells which worker process answered (``X-Worker-Pid``).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent.parent / "examples" / "django_app"))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pizzeria.settings")

from pizzeria.wsgi import application


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        return start_response(status, [*headers, ("X-Worker-Pid", str(os.getpid()))], exc_info)

    result: Iterable[bytes] = application(environ, start)
    return result
