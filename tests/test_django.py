"""Django: @limit on sync, class-based and async views, the middleware under
WSGI (``Client``) and ASGI (``AsyncClient``), the DRF throttle, the start-up
check (docs/design.md §5).

The settings are made by ``tests.django_project`` in this process only;
each test starts on a fresh memory:// store (``override_settings`` on a
``BUCKETCORE_*`` setting makes bucketcore reopen its limiter).
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.django_project import configure

configure()

from django.core.exceptions import ImproperlyConfigured  # noqa: E402
from django.http import HttpRequest, HttpResponse  # noqa: E402
from django.test import AsyncClient, Client, override_settings  # noqa: E402
from rest_framework.test import APIClient  # noqa: E402

from bucketcore.django import (  # noqa: E402
    RateLimitMiddleware,
    by_user,
    check_rate_limits,
    limit,
    limiting_disabled,
)
from bucketcore.errors import ConfigurationError  # noqa: E402
from bucketcore.integrations.django import config  # noqa: E402

ALICE = {"headers": {"Authorization": "Basic " + base64.b64encode(b"alice:x").decode()}}
BOB = {"headers": {"Authorization": "Basic " + base64.b64encode(b"bob:x").decode()}}


@pytest.fixture(autouse=True)
def fresh_store() -> Iterator[None]:
    with override_settings(BUCKETCORE_URL="memory://"):
        yield
    config.reset()


def statuses(client: Client, path: str, times: int, **extra: Any) -> list[int]:
    return [client.get(path, **extra).status_code for _ in range(times)]


def async_statuses(path: str, times: int, **extra: Any) -> list[int]:
    async def run() -> list[int]:
        client = AsyncClient()
        return [(await client.get(path, **extra)).status_code for _ in range(times)]

    return asyncio.run(run())


def test_a_sync_view_is_limited_per_key_and_denied_with_the_json_429() -> None:
    client = Client()
    assert statuses(client, "/pizza", 3, **ALICE) == [200, 200, 429]
    assert statuses(client, "/pizza", 1, **BOB) == [200]
    denied = client.get("/pizza", **ALICE)
    assert denied["Content-Type"] == "application/json"
    assert 0 < int(denied["Retry-After"]) <= 60
    assert denied["RateLimit-Policy"] == '"general";q=2;w=60'
    body = json.loads(denied.content)
    assert body == {"error": "rate_limited", "limit": "general", "retry_after": body["retry_after"]}
    assert str(body["retry_after"]) == denied["Retry-After"]


def test_an_allowed_response_carries_the_headers() -> None:
    response = Client().get("/pizza", **ALICE)
    assert response["RateLimit"] == '"general";r=1;t=30'
    assert response["X-RateLimit-Remaining"] == "1"
    assert "Retry-After" not in response


def test_an_async_view_shares_the_pool_of_a_sync_view_under_asgi() -> None:
    # /pasta is async def, /pizza sync, both in the pool "general".
    assert statuses(Client(), "/pizza", 1, **ALICE) == [200]
    assert async_statuses("/pasta", 2, **ALICE) == [200, 429]


def test_an_async_view_awaits_the_async_limiter(monkeypatch: pytest.MonkeyPatch) -> None:
    from bucketcore.integrations.django import views

    def no_sync_limiter() -> None:
        raise AssertionError("an async view used the blocking limiter")

    monkeypatch.setattr(views, "limiter", no_sync_limiter)
    assert async_statuses("/pasta", 3, **ALICE) == [200, 200, 429]


def test_an_async_view_under_the_sync_client() -> None:
    assert statuses(Client(), "/pasta", 3, **ALICE) == [200, 200, 429]


def test_a_class_based_view_is_limited_per_method() -> None:
    client = Client()
    assert statuses(client, "/icecream", 2) == [200, 429]
    assert client.post("/icecream").status_code == 200  # only get is decorated


def test_an_async_class_based_view() -> None:
    assert async_statuses("/async-icecream", 2) == [200, 429]


def test_stacked_limits_are_all_or_nothing() -> None:
    client = Client()
    allowed = client.post("/stacked")
    assert allowed.status_code == 200
    assert allowed["RateLimit-Policy"] == '"wide";q=5;w=60, "narrow";q=1;w=60'
    assert client.post("/stacked").status_code == 429  # "narrow": 1/minute, POST only
    # The denied POST gave back what "wide" took: 5 - 1 = 4 GETs are left.
    assert statuses(client, "/stacked", 5) == [200, 200, 200, 200, 429]


def test_a_spec_may_be_a_function_of_the_request() -> None:
    client = Client()
    assert statuses(client, "/plan", 2) == [200, 429]
    assert statuses(client, "/plan", 4, headers={"X-Plan": "pro"}) == [200, 200, 200, 429]


def test_the_middleware_applies_the_default_to_views_without_their_own() -> None:
    with override_settings(BUCKETCORE_DEFAULT="2/minute"):
        client = Client()
        assert statuses(client, "/plain", 3) == [200, 200, 429]
        assert client.get("/plain-async").status_code == 429  # one pool "default"
        assert statuses(client, "/healthz", 3) == [200] * 3  # @exempt
        # A view with its own limit is held to it, not to the default.
        assert statuses(client, "/pizza", 3, **ALICE) == [200, 200, 429]


def test_the_middleware_under_asgi_applies_the_default_and_adds_the_headers() -> None:
    with override_settings(BUCKETCORE_DEFAULT="2/minute"):
        assert async_statuses("/plain-async", 3) == [200, 200, 429]

        async def first() -> Any:
            return await AsyncClient().get("/plain", **BOB)

        response = asyncio.run(first())
        assert response["RateLimit-Policy"] == '"default";q=2;w=60'


def test_the_middleware_turns_rate_limited_into_the_429() -> None:
    response = Client().get("/raises")
    assert response.status_code == 429
    assert json.loads(response.content)["limit"] == "smtp"


def test_shadow_mode_reports_but_never_denies() -> None:
    with override_settings(BUCKETCORE_SHADOW=True):
        client = Client()
        responses = [client.get("/pizza", **ALICE) for _ in range(3)]
    assert [r.status_code for r in responses] == [200, 200, 200]
    assert responses[-1]["X-RateLimit-Remaining"] == "0"


def test_the_off_switches() -> None:
    with override_settings(BUCKETCORE_ENABLED=False):
        assert statuses(Client(), "/pizza", 3, **ALICE) == [200] * 3
    with limiting_disabled():
        assert statuses(Client(), "/pizza", 3, **ALICE) == [200] * 3
    assert statuses(Client(), "/pizza", 3, **ALICE) == [200, 200, 429]


def test_a_store_failure_answers_503_or_passes() -> None:
    class Broken:
        def acquire(self, *args: Any, **kwargs: Any) -> Any:
            from bucketcore.errors import StoreUnavailable

            raise StoreUnavailable("down")

    with pytest.MonkeyPatch.context() as patch:
        from bucketcore.integrations.django import views

        patch.setattr(views, "limiter", Broken)
        assert Client().get("/pizza", **ALICE).status_code == 503
        with override_settings(BUCKETCORE_ON_STORE_ERROR="pass"):
            assert Client().get("/pizza", **ALICE).status_code == 200


def test_a_custom_429_hook() -> None:
    from bucketcore.integrations.http import Answer

    def teapot(decision: Any) -> Answer:
        return Answer(418, {"Content-Type": "text/plain"}, b"no more pizza")

    with override_settings(BUCKETCORE_ON_DENIED=teapot):
        denied = Client().get("/icecream") and Client().get("/icecream")
    assert (denied.status_code, denied.content) == (418, b"no more pizza")
    assert denied["RateLimit-Policy"] == '"special";q=1;w=60'


def test_by_ip_trusts_only_the_configured_proxies() -> None:
    forwarded = {"REMOTE_ADDR": "10.0.0.1", "HTTP_X_FORWARDED_FOR": "6.6.6.6, 1.2.3.4"}
    with override_settings(BUCKETCORE_TRUSTED_PROXIES=1):
        client = Client()
        assert statuses(client, "/icecream", 2, **forwarded) == [200, 429]
        spoofed = {**forwarded, "HTTP_X_FORWARDED_FOR": "7.7.7.7, 1.2.3.4"}
        assert client.get("/icecream", **spoofed).status_code == 429  # same client
        other = {**forwarded, "HTTP_X_FORWARDED_FOR": "1.2.3.5"}
        assert client.get("/icecream", **other).status_code == 200


def test_by_user_names_the_authenticated_user() -> None:
    class User:
        is_authenticated = True
        pk = 42

    request = HttpRequest()
    assert by_user(request) is None
    request.user = User()  # type: ignore[attr-defined]
    assert by_user(request) == "user:42"


def test_a_key_function_returning_a_wrong_type_is_an_error_naming_it() -> None:
    def by_tenant(request: HttpRequest) -> Any:
        return 42

    view = limit("1/minute", key=by_tenant)(lambda request: HttpResponse("ok"))
    with pytest.raises(ConfigurationError, match="by_tenant returned 42"):
        view(HttpRequest())


def test_a_bad_spec_or_a_cost_above_the_burst_fails_at_import() -> None:
    with pytest.raises(ConfigurationError):
        limit("seven per fortnight")
    with pytest.raises(ConfigurationError, match="above the burst"):
        limit("5/minute", cost=6)


def test_the_drf_throttle_is_configured_per_scope_and_exact() -> None:
    client = APIClient()
    assert [client.get("/api/orders").status_code for _ in range(3)] == [200, 200, 429]
    denied = client.get("/api/orders")
    assert 0 < int(denied["Retry-After"]) <= 60  # DRF's, from wait()
    assert denied["RateLimit-Policy"] == '"orders";q=2;w=60'  # the middleware's
    # The view without a throttle_scope uses the class's scope, "api".
    assert [client.get("/api/menu").status_code for _ in range(4)] == [200, 200, 200, 429]


def test_the_drf_throttle_names_a_missing_scope() -> None:
    rates = {"DEFAULT_THROTTLE_RATES": {"api": "3/minute"}}
    with override_settings(REST_FRAMEWORK=rates):
        from bucketcore.django import RateLimitThrottle

        with pytest.raises(ImproperlyConfigured, match="no rate for scope 'orders'"):
            RateLimitThrottle().get_rate("orders")
        errors = check_rate_limits()
    assert [error.id for error in errors] == ["bucketcore.E005"]


def test_the_system_check_passes_on_the_test_project() -> None:
    assert check_rate_limits() == []


def test_the_system_check_refuses_bad_settings() -> None:
    with override_settings(BUCKETCORE_ON_STORE_ERROR="fail"):
        (error,) = check_rate_limits()
    assert error.id == "bucketcore.E001"
    with override_settings(BUCKETCORE_DEFAULT="every now and then"):
        (error,) = check_rate_limits()
    assert error.id == "bucketcore.E001"


def test_the_system_check_fires_on_a_bad_urlconf() -> None:
    with override_settings(ROOT_URLCONF="tests.django_project.bad_urls"):
        errors = check_rate_limits()
        with pytest.raises(ImproperlyConfigured, match=r"bucketcore\.E002"):
            RateLimitMiddleware(lambda request: HttpResponse())
    assert sorted(error.id for error in errors) == [
        "bucketcore.E002",
        "bucketcore.E003",
        "bucketcore.E004",
    ]
    messages = " ".join(error.msg for error in errors)
    assert "pool 'general' is 3/60s" in messages
    assert "by_tenant" in messages
    assert "the limit function" in messages


def test_manage_py_check_fails_on_a_bad_urlconf() -> None:
    from django.core.management import call_command
    from django.core.management.base import SystemCheckError

    bad = override_settings(ROOT_URLCONF="tests.django_project.bad_urls")
    with bad, pytest.raises(SystemCheckError, match=r"bucketcore\.E002"):
        call_command("check")
    call_command("check")
