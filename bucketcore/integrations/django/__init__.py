"""Rate limits for Django: a view decorator, a middleware, a DRF throttle.

In ``settings.py``::

    INSTALLED_APPS += ["bucketcore.integrations.django"]  # the start-up check
    MIDDLEWARE += ["bucketcore.django.RateLimitMiddleware"]
    BUCKETCORE_URL = "redis://localhost:6379/0"
    BUCKETCORE_DEFAULT = "100/hour"  # views without their own limit
    REST_FRAMEWORK = {
        "DEFAULT_THROTTLE_CLASSES": ["bucketcore.django.RateLimitThrottle"],
        "DEFAULT_THROTTLE_RATES": {"api": "100/hour"},
    }

In ``views.py``: ``@limit(...)`` on functions and ``async def`` views
(awaited, never blocking the loop), ``method_decorator(limit(...),
name="get")`` on classes.

>>> from bucketcore.django import by_basic_auth, limit
>>> @limit("7/30s", name="general", key=by_basic_auth)
... def pizza(request): ...
>>> pizza.__bucketcore_policies__[0].limits[0].label
'general'

The modules: ``views`` (``limit``, ``exempt``), ``middleware``, ``drf``,
``keys`` (``by_ip``, ``by_user``, ``by_basic_auth``, ``by_header``),
``config`` (the ``BUCKETCORE_*`` settings) and ``checks`` (the start-up
check). Each reads its request and writes its response around the shared
decision step (docs/design.md §5). Importing this package needs Django,
not its settings, nor DRF.
"""

from __future__ import annotations

from bucketcore.integrations.django.checks import check_rate_limits
from bucketcore.integrations.django.drf import RateLimitThrottle
from bucketcore.integrations.django.keys import (
    by_api_key,
    by_basic_auth,
    by_header,
    by_ip,
    by_user,
    client_ip,
)
from bucketcore.integrations.django.middleware import RateLimitMiddleware
from bucketcore.integrations.django.views import exempt, limit
from bucketcore.integrations.http import limiting_disabled

__all__ = [
    "RateLimitMiddleware",
    "RateLimitThrottle",
    "by_api_key",
    "by_basic_auth",
    "by_header",
    "by_ip",
    "by_user",
    "check_rate_limits",
    "client_ip",
    "exempt",
    "limit",
    "limiting_disabled",
]
