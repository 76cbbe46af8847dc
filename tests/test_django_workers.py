"""The Django demo served for real: gunicorn, 4 worker processes, one port.

As in test_demo_workers.py (the Flask demo), ``--max-requests 1`` makes
each worker exit after one request, so every request is answered by a
fresh process and only a store shared between processes counts them all.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from support.servers import free_port
from tests.http_servers import ROOT, get, gunicorn, serving

# --preload: Django is imported once, before the fork, so each fresh worker
# answers at once (a per-worker boot under load let a token refill mid-test).
ARGS = ("--preload", "--max-requests", "1", "--max-requests-jitter", "0")
DEMO = ROOT / "examples" / "django_app"


def serve_demo(
    url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, path: str
) -> list[tuple[int, str]]:
    """Eight requests of one user to ``path``; (status, worker pid) each."""
    monkeypatch.setenv("BUCKETCORE_URL", url)
    port = free_port()
    command = gunicorn("tests.django_project.pizzeria_workers:app", port, 4, *ARGS)
    with serving(command, port, "/healthz", tmp_path / "gunicorn.log") as base:
        answers = [get(f"{base}{path}", user="alice") for _ in range(8)]
    return [(answer.status, answer.headers["x-worker-pid"]) for answer in answers]


@pytest.mark.redis
@pytest.mark.parametrize("path", ["/pizza", "/pasta"])  # a sync view, an async view
def test_seven_requests_across_workers_on_redis_then_429(
    path: str,
    redis_server: Any,
    redis_prefix: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pytest.importorskip("bucketcore.backends.redis", reason="the redis backend is not here")
    url = f"{redis_server.url}?prefix={redis_prefix}"
    served = serve_demo(url, tmp_path, monkeypatch, path)
    assert [status for status, _ in served] == [200] * 7 + [429]
    assert len({pid for _, pid in served}) == 8


@pytest.mark.parametrize("path", ["/pizza", "/pasta"])
def test_seven_requests_across_workers_on_lmdb_then_429(
    path: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No server: the workers share one LMDB map on this host (and the app,
    # preloaded, made its limiter before the fork: each worker reopens it).
    pytest.importorskip("bucketcore.backends.lmdb", reason="the lmdb backend is not here")
    served = serve_demo(f"lmdb://{tmp_path}/demo-data", tmp_path, monkeypatch, path)
    assert [status for status, _ in served] == [200] * 7 + [429]
    assert len({pid for _, pid in served}) == 8


def test_memory_is_per_process_so_workers_do_not_share(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The control for the test above: every fresh worker starts full.
    served = serve_demo("memory://", tmp_path, monkeypatch, "/pizza")
    assert [status for status, _ in served] == [200] * 8
    assert len({pid for _, pid in served}) == 8


def test_the_demo_passes_manage_py_check() -> None:
    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=DEMO, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout
