"""The demo app (examples/web_app.py) through Flask's test client, on a fake clock."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from bucketcore import Limiter
from tests.conftest import FakeClock
from tests.example_app import load_example

web_app = load_example()


def auth(user: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:any-password".encode()).decode()
    return {"Authorization": f"Basic {token}"}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def client(clock: FakeClock) -> FlaskClient:
    app = web_app.create_app(Limiter("memory://", clock=clock))
    return app.test_client()


def statuses(client: FlaskClient, paths: list[str], user: str = "alice") -> list[int]:
    return [client.get(path, headers=auth(user)).status_code for path in paths]


def test_without_credentials_the_answer_is_401_with_a_challenge(client: FlaskClient) -> None:
    response = client.get("/pizza")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Basic ")
    assert "RateLimit" not in response.headers


def test_unauthenticated_requests_are_not_counted_against_anyone(client: FlaskClient) -> None:
    for _ in range(20):
        assert client.get("/pasta").status_code == 401
    assert statuses(client, ["/pasta"] * 7) == [200] * 7


def test_pizza_and_pasta_share_one_pool_of_seven(client: FlaskClient) -> None:
    got = statuses(client, ["/pizza", "/pasta"] * 4)
    assert got == [200] * 7 + [429]


def test_icecream_has_its_own_pool(client: FlaskClient) -> None:
    assert statuses(client, ["/pizza"] * 7) == [200] * 7
    assert statuses(client, ["/icecream", "/icecream"]) == [200, 429]
    assert statuses(client, ["/pasta"]) == [429]


def test_users_are_isolated(client: FlaskClient) -> None:
    assert statuses(client, ["/pizza"] * 8, user="alice")[-1] == 429
    assert statuses(client, ["/pizza"] * 7, user="bob") == [200] * 7
    assert statuses(client, ["/icecream"], user="carol") == [200]


def test_allowed_answers_carry_the_rate_limit_headers(client: FlaskClient) -> None:
    response = client.get("/pizza", headers=auth("alice"))
    assert response.status_code == 200
    assert response.get_json() == {"food": "pizza"}
    assert response.headers["RateLimit-Policy"] == '"general";q=7;w=30'
    assert response.headers["RateLimit"] == '"general";r=6;t=5'
    assert response.headers["X-RateLimit-Limit"] == "7"
    assert response.headers["X-RateLimit-Remaining"] == "6"
    assert "Retry-After" not in response.headers


def test_index_is_a_hundred_per_hour(client: FlaskClient) -> None:
    got = statuses(client, ["/"] * 101)
    assert got == [200] * 100 + [429]
    response = client.get("/", headers=auth("alice"))
    assert response.headers["RateLimit-Policy"] == '"index";q=100;w=3600'


def test_a_denial_is_429_with_retry_after_headers_and_json(client: FlaskClient) -> None:
    statuses(client, ["/pizza"] * 7)
    response = client.get("/pasta", headers=auth("alice"))
    assert response.status_code == 429
    # One token comes back every 30/7 s, so a client must wait 5 whole seconds.
    assert response.headers["Retry-After"] == "5"
    assert response.headers["RateLimit"] == '"general";r=0;t=30'
    assert response.headers["X-RateLimit-Remaining"] == "0"
    assert response.mimetype == "application/json"
    assert json.loads(response.data) == {
        "error": "rate_limited",
        "limit": "general",
        "retry_after": 5,
    }


def test_retry_after_is_honoured(client: FlaskClient, clock: FakeClock) -> None:
    statuses(client, ["/pizza"] * 7)
    retry = int(client.get("/pizza", headers=auth("alice")).headers["Retry-After"])
    clock.advance(retry - 1)
    assert statuses(client, ["/pizza"]) == [429]
    clock.advance(1)
    assert statuses(client, ["/pizza", "/pizza"]) == [200, 429]


def test_an_exact_ten_second_wait_reads_ten(client: FlaskClient) -> None:
    statuses(client, ["/icecream"])
    response = client.get("/icecream", headers=auth("alice"))
    assert response.headers["Retry-After"] == "10"
    assert response.headers["RateLimit"] == '"special";r=0;t=10'


def test_icecream_comes_back_after_ten_seconds(client: FlaskClient, clock: FakeClock) -> None:
    assert statuses(client, ["/icecream", "/icecream"]) == [200, 429]
    clock.advance(9.999)
    assert statuses(client, ["/icecream"]) == [429]
    clock.advance(0.001)
    assert statuses(client, ["/icecream"]) == [200]


def test_healthz_is_never_limited_and_needs_no_credentials(client: FlaskClient) -> None:
    for _ in range(200):
        assert client.get("/healthz").status_code == 200


def test_the_backend_comes_from_bucketcore_url(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("BUCKETCORE_URL", "bogus://nowhere")
    with pytest.raises(ValueError, match="unknown store URL scheme"):
        web_app.create_app()


def test_the_same_app_on_rocksdb_keeps_its_counts_across_a_restart(
    clock: FakeClock, tmp_path: Path
) -> None:
    pytest.importorskip("bucketcore.backends.rocksdb", reason="the rocksdb backend is not here")
    url = f"rocksdb://{tmp_path / 'demo-data'}"
    first = Limiter(url, clock=clock, wall_clock=clock)
    assert statuses(web_app.create_app(first).test_client(), ["/pizza", "/pasta"] * 3) == [200] * 6
    first.close()
    again = Limiter(url, clock=clock, wall_clock=clock)
    try:
        client = web_app.create_app(again).test_client()
        assert statuses(client, ["/pasta", "/pizza"]) == [200, 429]
        assert statuses(client, ["/icecream"]) == [200]
    finally:
        again.close()
