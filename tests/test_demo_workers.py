"""The demo served for real: gunicorn, 4 worker processes, one loopback port.

``--max-requests 1`` makes every worker exit after one request (gunicorn
starts a fresh one), so each request is answered by a different process and
only a store shared between processes can count them together.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from support.servers import RedisProcess, free_port
from tests.http_servers import get, gunicorn, serving

ARGS = ("--max-requests", "1", "--max-requests-jitter", "0")


def serve_demo(url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, str]]:
    """Eight /pizza requests of one user; (status, worker pid) each."""
    monkeypatch.setenv("BUCKETCORE_URL", url)
    port = free_port()
    command = gunicorn("tests.demo_workers:app", port, 4, *ARGS)
    with serving(command, port, "/healthz", tmp_path / "gunicorn.log") as base:
        answers = [get(f"{base}/pizza", user="alice") for _ in range(8)]
    return [(answer.status, answer.headers["x-worker-pid"]) for answer in answers]


@pytest.mark.redis
def test_seven_requests_across_workers_on_redis_then_429(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, redis_process_factory: type[RedisProcess]
) -> None:
    pytest.importorskip("bucketcore.backends.redis", reason="the redis backend is not here")
    server = redis_process_factory()
    server.start()
    served = serve_demo(server.url, tmp_path, monkeypatch)
    assert [status for status, _ in served] == [200] * 7 + [429]
    assert len({pid for _, pid in served}) == 8


def test_seven_requests_across_workers_on_lmdb_then_429(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("bucketcore.backends.lmdb", reason="the lmdb backend is not here")
    served = serve_demo(f"lmdb://{tmp_path}/demo-data", tmp_path, monkeypatch)
    assert [status for status, _ in served] == [200] * 7 + [429]
    assert len({pid for _, pid in served}) == 8


def test_memory_is_per_process_so_workers_do_not_share(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The control for the test above: with memory:// every fresh worker starts
    # full, so the 8th request is allowed. The Redis test is what shares.
    served = serve_demo("memory://", tmp_path, monkeypatch)
    assert [status for status, _ in served] == [200] * 8
    assert len({pid for _, pid in served}) == 8
