"""The FastAPI dependency: through the test client, and through a real uvicorn process."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from fastapi import Depends, FastAPI
from starlette.testclient import TestClient

from bucketcore import AsyncLimiter
from bucketcore.errors import ConfigurationError
from bucketcore.fastapi import RateLimit, by_user
from bucketcore.integrations.http import Answer
from support.servers import free_port
from tests.conftest import FakeClock
from tests.http_servers import Answer as Reply
from tests.http_servers import serving, uvicorn


def auth(user: str, plan: str | None = None) -> dict[str, str]:
    headers = {"Authorization": "Basic " + base64.b64encode(f"{user}:pw".encode()).decode()}
    if plan is not None:
        headers["X-Plan"] = plan
    return headers


def fetch(url: str, headers: dict[str, str]) -> Reply:
    request = urllib.request.Request(url, headers=headers)  # noqa: S310 - loopback
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            headers = {k.lower(): v for k, v in response.headers.items()}
            return Reply(response.status, headers, response.read())
    except urllib.error.HTTPError as error:
        headers = {k.lower(): v for k, v in error.headers.items()}
        return Reply(error.code, headers, error.read())


def test_plans_headers_and_429_through_uvicorn(tmp_path: Path) -> None:
    port = free_port()
    command = uvicorn("tests.fastapi_apps:app", port)
    with serving(command, port, "/healthz", tmp_path / "server.log") as base:
        free = [fetch(f"{base}/api/items/{n}", auth("ann", "free")) for n in range(3)]
        assert [r.status for r in free] == [200, 200, 429]
        assert json.loads(free[0].body) == {"item": 0}
        assert free[0].headers["ratelimit-policy"] == '"plan:2/60s";q=2;w=60'
        assert free[1].headers["x-ratelimit-remaining"] == "0"
        assert 1 <= int(free[2].headers["retry-after"]) <= 60
        assert json.loads(free[2].body)["detail"]["limit"] == "plan:2/60s"
        pro = [fetch(f"{base}/api/items/1", auth("bob", "pro")).status for _ in range(11)]
        assert pro == [200] * 10 + [429]
        left = [fetch(f"{base}/left", auth("cy")) for _ in range(4)]
        assert [r.status for r in left] == [200, 200, 200, 429]
        assert json.loads(left[2].body) == {"left": 0}


@pytest.fixture
def limiter(clock: FakeClock) -> AsyncLimiter:
    return AsyncLimiter(clock=clock)


def test_through_the_test_client_on_an_app_and_a_parameter(limiter: AsyncLimiter) -> None:
    app = FastAPI()

    @app.get("/pizza", dependencies=[Depends(RateLimit("2/minute", key=by_user, limiter=limiter))])
    async def pizza() -> dict[str, str]:
        return {"food": "pizza"}

    client = TestClient(app)
    replies = [client.get("/pizza", headers=auth("ann")) for _ in range(3)]
    assert [r.status_code for r in replies] == [200, 200, 429]
    assert replies[0].headers["ratelimit"] == '"2/60s";r=1;t=30'
    assert replies[2].headers["retry-after"] == "30"
    assert client.get("/pizza", headers=auth("bob")).status_code == 200


def test_shadow_enabled_and_a_custom_denial(limiter: AsyncLimiter) -> None:
    def page(decision: object) -> Answer:
        return Answer(429, {"X-Why": "plan"}, b"upgrade")

    app = FastAPI()
    shadow = RateLimit("1/minute", limiter=limiter, shadow=True)
    off = RateLimit("1/minute", limiter=limiter, enabled=False)
    custom = RateLimit("1/minute", limiter=limiter, on_denied=page)
    for path, dependency in [("/shadow", shadow), ("/off", off), ("/custom", custom)]:
        app.add_api_route(path, lambda: {"ok": True}, dependencies=[Depends(dependency)])
    client = TestClient(app)
    assert [client.get("/shadow").status_code for _ in range(3)] == [200] * 3
    assert client.get("/shadow").headers["ratelimit"] == '"1/60s";r=0;t=60'
    assert [client.get("/off").status_code for _ in range(3)] == [200] * 3
    assert "ratelimit" not in client.get("/off").headers
    client.get("/custom")
    denied = client.get("/custom")
    assert (denied.status_code, denied.headers["x-why"]) == (429, "plan")
    assert denied.json() == {"detail": "upgrade"}


def test_bad_dependencies_are_refused_when_made() -> None:
    with pytest.raises(ConfigurationError, match="cost 6 is above the burst 5"):
        RateLimit("5/s", cost=6)
    RateLimit("7/30s", name="fa-conflict")
    with pytest.raises(ConfigurationError, match="pool 'fa-conflict' is 8/30s"):
        RateLimit("8/30s", name="fa-conflict")
    with pytest.raises(ConfigurationError, match="AsyncLimiter"):
        RateLimit("1/s", limiter=object())  # type: ignore[arg-type]
