"""The Flask integration (bucketcore.flask), through Flask's test client."""

from __future__ import annotations

import base64
import subprocess
import sys

import flask
import pytest
from flask.testing import FlaskClient

from bucketcore import Limit, Limiter, rate_limited
from bucketcore.errors import ConfigurationError, StoreUnavailable
from bucketcore.flask import BucketCore, by_api_key, by_header, by_ip, by_user, exempt, limit
from bucketcore.hooks import DecisionEvent
from tests.conftest import FakeClock
from tests.stores import DegradedStore, DownStore


def basic(user: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:pw".encode()).decode()}


def make_app(limiter: Limiter | None = None, **options: object) -> tuple[flask.Flask, BucketCore]:
    app = flask.Flask("test")
    ext = BucketCore(app, limiter=limiter or Limiter(clock=FakeClock()), **options)  # type: ignore[arg-type]
    return app, ext


def codes(client: FlaskClient, path: str, n: int, **kwargs: object) -> list[int]:
    return [client.get(path, **kwargs).status_code for _ in range(n)]  # type: ignore[arg-type]


def test_by_ip_keys_each_address_separately() -> None:
    app, _ = make_app()

    @app.get("/")
    @limit("2/minute", key=by_ip)
    def index() -> str:
        return "ok"

    client = app.test_client()
    a = {"environ_base": {"REMOTE_ADDR": "127.0.0.11"}}
    b = {"environ_base": {"REMOTE_ADDR": "127.0.0.12"}}
    assert codes(client, "/", 3, **a) == [200, 200, 429]
    assert codes(client, "/", 2, **b) == [200, 200]


def test_by_user_falls_back_to_the_ip_without_credentials() -> None:
    app, _ = make_app(key=by_user)

    @app.get("/")
    @limit("2/minute")
    def index() -> str:
        return "ok"

    client = app.test_client()
    assert codes(client, "/", 3) == [200, 200, 429]
    # Naming a user moves the request to that user's bucket, not the IP's.
    assert codes(client, "/", 2, headers=basic("alice")) == [200, 200]
    assert codes(client, "/", 1, headers=basic("alice")) == [429]


def test_a_user_named_like_an_ip_is_not_that_ip() -> None:
    app, _ = make_app(key=by_user)

    @app.get("/")
    @limit("1/minute")
    def index() -> str:
        return "ok"

    client = app.test_client()
    assert codes(client, "/", 1, headers=basic("127.0.0.1")) == [200]
    assert codes(client, "/", 1) == [200]


def test_by_api_key_keys_by_the_header_and_never_stores_the_secret() -> None:
    seen: list[DecisionEvent] = []
    app, _ = make_app(key=by_api_key, on_decision=seen.append)

    @app.get("/")
    @limit("1/minute")
    def index() -> str:
        return "ok"

    client = app.test_client()
    assert codes(client, "/", 2, headers={"X-API-Key": "sk-live-1"}) == [200, 429]
    assert codes(client, "/", 1, headers={"X-API-Key": "sk-live-2"}) == [200]
    assert all("sk-live" not in str(event.key) for event in seen)


def test_a_huge_client_key_is_hashed_not_a_server_error() -> None:
    app, _ = make_app(key=by_header("X-Token"))

    @app.get("/")
    @limit("1/minute")
    def index() -> str:
        return "ok"

    client = app.test_client()
    token = "t" * 10_000
    assert codes(client, "/", 2, headers={"X-Token": token}) == [200, 429]
    assert codes(client, "/", 1, headers=basic("u" * 5000)) == [200]


def test_a_custom_key_function_and_a_callable_cost() -> None:
    app, _ = make_app()

    @app.post("/upload")
    @limit(
        "10/minute",
        key=lambda: "tenant:" + flask.request.args["tenant"],
        cost=lambda: int(flask.request.args["n"]),
    )
    def upload() -> str:
        return "ok"

    client = app.test_client()
    assert client.post("/upload?tenant=a&n=7").status_code == 200
    assert client.post("/upload?tenant=a&n=4").status_code == 429
    assert client.post("/upload?tenant=a&n=3").status_code == 200
    assert client.post("/upload?tenant=b&n=10").status_code == 200


def test_views_sharing_a_name_share_a_pool_and_others_do_not() -> None:
    app, _ = make_app()

    @app.get("/a")
    @limit("3/minute", name="shared")
    def a() -> str:
        return "a"

    @app.get("/b")
    @limit("3/minute", name="shared")
    def b() -> str:
        return "b"

    @app.get("/c")
    @limit("3/minute")
    def c() -> str:
        return "c"

    client = app.test_client()
    assert [client.get(p).status_code for p in ["/a", "/b", "/a", "/b"]] == [200, 200, 200, 429]
    assert codes(client, "/c", 3) == [200, 200, 200]


def test_one_pool_name_with_two_sizes_is_refused() -> None:
    _, ext = make_app()
    ext.limit("7/30s", name="general")
    with pytest.raises(ConfigurationError, match="pool 'general' is 8/30s in a limit but 7/30s"):
        ext.limit("8/30s", name="general")


def test_default_limits_apply_to_undecorated_views_but_not_exempt_ones() -> None:
    app, _ = make_app(default="2/minute")

    @app.get("/one")
    def one() -> str:
        return "1"

    @app.get("/two")
    def two() -> str:
        return "2"

    @app.get("/own")
    @limit("5/minute")
    def own() -> str:
        return "own"

    @app.get("/healthz")
    @exempt
    def healthz() -> str:
        return "ok"

    client = app.test_client()
    assert [client.get(p).status_code for p in ["/one", "/two", "/one"]] == [200, 200, 429]
    assert codes(client, "/own", 5) == [200] * 5
    assert codes(client, "/healthz", 50) == [200] * 50
    assert "RateLimit" not in client.get("/healthz").headers
    assert client.get("/missing").status_code == 404


def test_exempt_when_skips_the_check() -> None:
    app, _ = make_app(exempt_when=lambda: flask.request.remote_addr == "127.0.0.21")

    @app.get("/")
    @limit("1/minute", exempt_when=lambda: "vip" in flask.request.args)
    def index() -> str:
        return "ok"

    client = app.test_client()
    assert codes(client, "/", 3, environ_base={"REMOTE_ADDR": "127.0.0.21"}) == [200] * 3
    assert codes(client, "/", 2) == [200, 429]
    assert codes(client, "/?vip=1", 2) == [200, 200]


def test_stacked_limits_refund_on_denial_so_a_429_costs_nothing() -> None:
    app, ext = make_app()

    @app.get("/")
    @limit("100/hour", name="hourly")
    @limit("2/minute", name="burst")
    def index() -> str:
        return "ok"

    client = app.test_client()
    assert codes(client, "/", 5) == [200, 200, 429, 429, 429]
    hourly = ext.limiter.peek("ip:127.0.0.1", Limit(100, 3600, name="hourly"))
    assert hourly.remaining == 100 - 2 - 1


def test_headers_come_from_the_tightest_of_several_limits() -> None:
    app, _ = make_app()

    @app.get("/")
    @limit("10/s; 3/minute", name="api")
    def index() -> str:
        return "ok"

    response = app.test_client().get("/")
    assert response.headers["X-RateLimit-Limit"] == "3"
    assert response.headers["X-RateLimit-Remaining"] == "2"


def test_a_store_failure_answers_503_by_default() -> None:
    store = DownStore()
    seen: list[DecisionEvent] = []
    app, _ = make_app(Limiter(store), on_decision=seen.append)

    @app.get("/")
    @limit("1/minute")
    def index() -> str:
        return "ok"

    response = app.test_client().get("/")
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "1"
    assert response.get_json() == {"error": "rate_limiter_unavailable", "retry_after": 1}
    assert [event.outcome for event in seen] == ["error"]
    assert isinstance(seen[0].error, StoreUnavailable)
    assert seen[0].decision is None


def test_a_store_failure_passes_through_when_asked() -> None:
    seen: list[str] = []
    app, _ = make_app(
        Limiter(DownStore()), on_store_error="pass", on_decision=lambda e: seen.append(e.outcome)
    )

    @app.get("/")
    @limit("1/minute")
    def index() -> str:
        return "ok"

    client = app.test_client()
    responses = [client.get("/") for _ in range(3)]
    assert [r.status_code for r in responses] == [200, 200, 200]
    assert "RateLimit" not in responses[0].headers
    assert seen == ["error"] * 3


def test_a_degraded_decision_is_reported_as_degraded() -> None:
    seen: list[str] = []
    app, _ = make_app(Limiter(DegradedStore()), on_decision=lambda e: seen.append(e.outcome))

    @app.get("/")
    @limit("1/minute")
    def index() -> str:
        return "ok"

    assert app.test_client().get("/").status_code == 200
    assert seen == ["degraded"]


def test_hooks_see_every_decision_with_its_endpoint() -> None:
    seen: list[DecisionEvent] = []
    app, _ = make_app(on_decision=[seen.append])

    @app.get("/pizza")
    @limit("1/minute", name="general")
    def pizza() -> str:
        return "ok"

    client = app.test_client()
    codes(client, "/pizza", 2)
    assert [(e.outcome, e.source, e.limit_name, e.key) for e in seen] == [
        ("allowed", "pizza", "general", "ip:127.0.0.1"),
        ("denied", "pizza", "general", "ip:127.0.0.1"),
    ]


def test_rate_limited_raised_by_a_view_is_a_429_too() -> None:
    app, ext = make_app()
    expensive = rate_limited(ext.limiter, "1/minute", key="report", name="reports")

    @app.get("/report")
    def report() -> str:
        with expensive:
            return "report"

    client = app.test_client()
    assert client.get("/report").status_code == 200
    denied = client.get("/report")
    assert denied.status_code == 429
    assert denied.headers["Retry-After"] == "60"
    assert denied.headers["RateLimit"] == '"reports";r=0;t=60'
    assert denied.get_json() == {"error": "rate_limited", "limit": "reports", "retry_after": 60}


def test_the_store_url_comes_from_app_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BUCKETCORE_URL", "memory://")
    app = flask.Flask("test")
    app.config["BUCKETCORE_URL"] = "nosuch://x"
    with pytest.raises(ConfigurationError, match="unknown store URL scheme"):
        BucketCore(app)


def test_the_application_factory_pattern() -> None:
    ext = BucketCore(key=by_ip)
    with pytest.raises(ConfigurationError, match="init_app"):
        _ = ext.limiter
    app = flask.Flask("test")

    @app.get("/")
    @limit("1/minute")
    def index() -> str:
        return "ok"

    ext.init_app(app)
    assert codes(app.test_client(), "/", 2) == [200, 429]


def test_bad_arguments_are_refused_at_once() -> None:
    with pytest.raises(ConfigurationError, match="malformed limit"):
        limit("seven per fortnight")
    with pytest.raises(ConfigurationError, match="cost"):
        limit("1/s", cost=0)
    with pytest.raises(ConfigurationError, match="on_store_error"):
        BucketCore(on_store_error="allow")


def test_importing_bucketcore_does_not_import_flask() -> None:
    code = (
        "import sys, bucketcore; print('flask' in sys.modules, 'bucketcore.flask' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_limits_of_one_pool_that_cannot_be_told_apart_are_refused_at_once() -> None:
    from bucketcore.errors import ConfigurationError
    from bucketcore.integrations.http import limits_from

    assert len({x.name for x in limits_from("10/s; 10/s burst 20", name="api")}) == 2
    with pytest.raises(ConfigurationError, match="not distinct"):
        limits_from("10/1000001s; 10/1000002s", name="api")
