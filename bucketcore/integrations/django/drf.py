"""``RateLimitThrottle``: a Django REST framework throttle decided by bucketcore.

Configured the DRF way::

    REST_FRAMEWORK = {
        "DEFAULT_THROTTLE_CLASSES": ["bucketcore.django.RateLimitThrottle"],
        "DEFAULT_THROTTLE_RATES": {"api": "100/hour", "orders": "10/minute"},
    }

A view's ``throttle_scope`` picks its rate (else the class's ``scope``,
``"api"``); a rate is any bucketcore spec (``"10/minute"``,
``"7/30s"``, ``"10/s; 1000/day"``). Each scope is one pool, per
authenticated user (``user:<pk>``) or, without one, per IP address
(``BUCKETCORE_TRUSTED_PROXIES``). Unlike DRF's own throttles, which
read, then write, a cache entry, the decision is one atomic step in the
store, so concurrent requests and workers never overshoot the rate.
``wait()`` gives DRF its ``Retry-After``. With ``RateLimitMiddleware``
installed, the responses also carry the RateLimit headers.

DRF's throttle classes read the settings when imported, so this one does
not inherit from them: DRF calls only ``allow_request`` and ``wait``.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

from django.core.exceptions import ImproperlyConfigured

from bucketcore.errors import ConfigurationError
from bucketcore.integrations.django.config import config, limiter
from bucketcore.integrations.django.keys import by_user
from bucketcore.integrations.django.views import HEADERS
from bucketcore.integrations.http import Policy, decide_request

__all__ = ["RateLimitThrottle", "throttle_rates"]


def throttle_rates() -> dict[str, Any]:
    """DRF's ``DEFAULT_THROTTLE_RATES``."""
    from rest_framework.settings import api_settings

    rates: dict[str, Any] = api_settings.DEFAULT_THROTTLE_RATES
    return rates


@functools.lru_cache(maxsize=256)
def scope_policy(scope: str, rate: str) -> Policy[Any]:
    """The policy of one scope: ``rate`` in a pool named after the scope.

    >>> scope_policy("orders", "10/minute").limits[0].label
    'orders'
    """
    try:
        return Policy(rate, name=scope)
    except ConfigurationError as exc:
        raise ImproperlyConfigured(
            f"DEFAULT_THROTTLE_RATES[{scope!r}] = {rate!r} is not a rate: {exc}"
        ) from exc


def _unavailable() -> Exception:
    """The 503 DRF sends when the store fails and ``BUCKETCORE_ON_STORE_ERROR`` is "503"."""
    from rest_framework.exceptions import APIException

    error: Exception = APIException("the rate limiter is unavailable; retry in a second")
    error.status_code = 503  # type: ignore[attr-defined]
    return error


class RateLimitThrottle:
    """A DRF throttle: ``allow_request(request, view)``, then ``wait()`` if denied."""

    scope: str = "api"
    rate: str | None = None  # set on a subclass to skip DEFAULT_THROTTLE_RATES

    def __init__(self) -> None:
        self._wait: float | None = None

    def get_scope(self, view: Any) -> str:
        """The view's ``throttle_scope``, else this class's ``scope``."""
        return str(getattr(view, "throttle_scope", None) or self.scope)

    def get_rate(self, scope: str) -> str:
        """The rate of ``scope``; a scope without one is a configuration error."""
        if self.rate is not None:
            return self.rate
        rates = throttle_rates()
        if scope not in rates or rates[scope] is None:
            raise ImproperlyConfigured(
                f"{type(self).__name__}: no rate for scope {scope!r} in "
                "REST_FRAMEWORK['DEFAULT_THROTTLE_RATES'] (a throttle without a rate "
                "would limit nothing)"
            )
        return str(rates[scope])

    def get_key(self, request: Any) -> str | None:
        """Who is asking: the authenticated user, else None (their IP address)."""
        return by_user(request)

    def allow_request(self, request: Any, view: Any) -> bool:
        scope = self.get_scope(view)
        policy = scope_policy(scope, self.get_rate(scope))
        options = dataclasses.replace(config().options, key=self.get_key, on_denied=None)
        result = decide_request(limiter(), [policy], request, options, source=scope)
        django_request = getattr(request, "_request", request)
        if result.answer is None:
            setattr(django_request, HEADERS, result.headers)
            return True
        if result.answer.status != 429:
            raise _unavailable()
        retry_after = result.answer.headers.get("Retry-After")
        self._wait = None if retry_after is None else float(retry_after)
        # DRF writes the 429 itself: the middleware adds the RateLimit headers to it.
        headers = result.answer.headers
        setattr(django_request, HEADERS, {k: v for k, v in headers.items() if "RateLimit" in k})
        return False

    def wait(self) -> float | None:
        """Seconds until the denied request would be allowed (DRF's ``Retry-After``)."""
        return self._wait
