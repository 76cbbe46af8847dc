"""RateLimitMiddleware end to end: Starlette and FastAPI served by a real uvicorn process."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from support.servers import free_port
from tests.http_servers import get, serving, uvicorn


@pytest.mark.parametrize("app", ["tests.asgi_apps:starlette_app", "tests.asgi_apps:fastapi_app"])
def test_limits_headers_and_429_through_uvicorn(app: str, tmp_path: Path) -> None:
    port = free_port()
    with serving(uvicorn(app, port), port, "/healthz", tmp_path / "server.log") as base:
        answers = [get(f"{base}/{path}", user="alice") for path in ["pizza", "pasta", "pizza"]]
        assert [a.status for a in answers] == [200, 200, 200]
        assert json.loads(answers[1].body) == {"food": "pasta"}
        # One pool across /pizza and /pasta: r counts down; t (until full) grows by
        # 1200 s a token, less the few seconds a slow machine may take between requests.
        for answer, left, full in zip(answers, [2, 1, 0], [1200, 2400, 3600], strict=True):
            name, r, t = answer.headers["ratelimit"].split(";")
            assert (name, r) == ('"general"', f"r={left}")
            assert full - 30 <= int(t.removeprefix("t=")) <= full + 1
            assert answer.headers["x-ratelimit-remaining"] == str(left)
        assert answers[0].headers["ratelimit-policy"] == '"general";q=3;w=3600'

        denied = get(f"{base}/pasta", user="alice")
        assert denied.status == 429
        assert denied.headers["content-type"] == "application/json"
        assert 1170 <= int(denied.headers["retry-after"]) <= 1201
        assert json.loads(denied.body)["limit"] == "general"

        assert get(f"{base}/pizza", user="bob").status == 200
        for _ in range(10):
            health = get(f"{base}/healthz")
            assert health.status == 200
            assert "ratelimit" not in health.headers
