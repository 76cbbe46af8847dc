"""The Prometheus hook, fed by the Flask extension and the ASGI middleware."""

from __future__ import annotations

import flask
from prometheus_client import CollectorRegistry

from bucketcore import AsyncLimiter, Limiter
from bucketcore.asgi import RateLimitMiddleware, rule
from bucketcore.flask import BucketCore, limit
from bucketcore.prometheus import PrometheusHook
from tests.asgi_driver import call, hello
from tests.conftest import FakeClock
from tests.stores import DownStore


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels) or 0.0


def test_flask_decisions_are_counted_by_limit_and_outcome() -> None:
    registry = CollectorRegistry()
    app = flask.Flask("test")
    BucketCore(app, limiter=Limiter(clock=FakeClock()), on_decision=PrometheusHook(registry))

    @app.get("/pizza")
    @limit("2/minute", name="general")
    def pizza() -> str:
        return "ok"

    client = app.test_client()
    for _ in range(5):
        client.get("/pizza")
    total = "bucketcore_decisions_total"
    assert sample(registry, total, limit="general", outcome="allowed") == 2
    assert sample(registry, total, limit="general", outcome="denied") == 3


def test_store_errors_are_counted_by_type() -> None:
    registry = CollectorRegistry()
    app = RateLimitMiddleware(
        hello,
        limiter=AsyncLimiter(DownStore()),
        rules=[rule("/", "1/s", name="root")],
        on_store_error="pass",
        on_decision=PrometheusHook(registry, namespace="shop"),
    )
    for _ in range(3):
        assert call(app, "/").status == 200
    assert sample(registry, "shop_decisions_total", limit="root", outcome="error") == 3
    assert sample(registry, "shop_store_errors_total", error="StoreUnavailable") == 3
