"""Every configuration issue 13 found silently skipping a limit: it limits, or it is refused.

docs/design.md §5: nothing accepted may silently fail to limit what it names.
"""

from __future__ import annotations

import flask
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from bucketcore import AsyncLimiter, Limiter
from bucketcore.asgi import RateLimitMiddleware, rule
from bucketcore.errors import ConfigurationError
from bucketcore.flask import BucketCore, limit
from bucketcore.integrations.http import limiting_disabled
from tests.asgi_driver import call, hello, lifespan


def asgi(*rules: object, **options: object) -> RateLimitMiddleware:
    return RateLimitMiddleware(hello, limiter=AsyncLimiter(), rules=rules, **options)  # type: ignore[arg-type]


def test_methods_given_as_one_string_limit_that_method() -> None:
    app = asgi(rule("/x", "1/minute", methods="POST"))
    assert [call(app, "/x", method="POST").status for _ in range(2)] == [200, 429]
    assert call(app, "/x", method="GET").status == 200
    with pytest.raises(ConfigurationError, match="'P' is not an HTTP method"):
        rule("/x", "1/minute", methods=list("POST"))


def test_a_star_inside_a_pattern_is_refused_and_a_parameter_matches() -> None:
    with pytest.raises(ConfigurationError, match="only allowed as the last segment"):
        rule("/api/*/x", "1/minute")
    app = asgi(rule("/api/{version}/x", "1/minute"))
    assert [call(app, "/api/v1/x").status for _ in range(2)] == [200, 429]


def test_a_trailing_slash_is_the_same_path() -> None:
    app = asgi(rule("/x", "1/minute"))
    assert [call(app, p).status for p in ["/x/", "/x"]] == [200, 429]
    prefix = asgi(rule("/api/*", "1/minute"))
    assert [call(prefix, p).status for p in ["/api", "/api/"]] == [200, 429]


async def ok(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


def starlette_app(*rules: object) -> Starlette:
    routes = [Route("/items/{item_id:int}", ok), Route("/x", ok)]
    app = Starlette(routes=routes)
    app.add_middleware(RateLimitMiddleware, limiter=AsyncLimiter(), rules=list(rules))
    return app


def test_a_route_template_rule_limits_through_starlette_including_its_redirect() -> None:
    client = TestClient(starlette_app(rule("/items/{id}", "2/minute"), rule("/x", "1/minute")))
    assert [client.get(f"/items/{n}").status_code for n in range(3)] == [200, 200, 429]
    # Starlette redirects /x/ to /x; the redirect is the rule's too, so it costs a token.
    assert client.get("/x/", follow_redirects=False).status_code == 307
    assert client.get("/x").status_code == 429


def test_a_rule_no_route_reaches_is_refused_at_start_up() -> None:
    with pytest.raises(ConfigurationError, match="'/itemz' matches none of the app's routes"):
        RateLimitMiddleware(starlette_app(), rules=[rule("/itemz", "1/s")])
    # Added to the app, the middleware sees its routes at start-up, and fails it.
    sent = lifespan(starlette_app(rule("/pizzas", "1/s")))
    assert sent[0]["type"] == "lifespan.startup.failed"
    assert "'/pizzas' matches none of the app's routes" in sent[0]["message"]
    assert lifespan(starlette_app(rule("/x", "1/s")))[0]["type"] == "lifespan.startup.complete"


def test_a_cost_above_the_burst_is_refused_everywhere() -> None:
    with pytest.raises(ConfigurationError, match="cost 6 is above the burst 5"):
        limit("5/s", cost=6)
    with pytest.raises(ConfigurationError, match="cost 6 is above the burst 5"):
        rule("/x", "5/s", cost=6)
    app = asgi(rule("/x", "5/s", cost=lambda scope: 6))
    with pytest.raises(ConfigurationError, match=r"cost 6 is above the burst 5 .*<lambda>"):
        call(app, "/x")


def flask_app(with_extension: bool) -> flask.Flask:
    app = flask.Flask("bare")
    app.config["PROPAGATE_EXCEPTIONS"] = True
    if with_extension:
        BucketCore(app, limiter=Limiter())

    @app.get("/")
    @limit("1/minute")
    def index() -> str:
        return "ok"

    return app


def test_limit_without_the_extension_refuses_to_serve() -> None:
    with pytest.raises(ConfigurationError, match="has @limit but its app has no BucketCore"):
        flask_app(with_extension=False).test_client().get("/")
    client = flask_app(with_extension=True).test_client()
    assert [client.get("/").status_code for _ in range(2)] == [200, 429]


def test_a_flask_pool_conflict_is_refused_when_the_view_is_registered() -> None:
    app = flask.Flask("pools")
    BucketCore(app, limiter=Limiter())

    @app.get("/pizza")
    @limit("7/30s", name="general")
    def pizza() -> str:
        return "pizza"

    with pytest.raises(ConfigurationError, match="8/30s at view 'pasta' but 7/30s at view 'pizza'"):

        @app.get("/pasta")
        @limit("8/30s", name="general")
        def pasta() -> str:
            return "pasta"


def test_the_off_switch_is_visible_and_scoped() -> None:
    app = asgi(rule("/x", "1/minute"))
    with limiting_disabled():
        assert [call(app, "/x").status for _ in range(3)] == [200] * 3
    assert [call(app, "/x").status for _ in range(2)] == [200, 429]
    off = asgi(rule("/x", "1/minute"), enabled=False)
    assert [call(off, "/x").status for _ in range(3)] == [200] * 3
