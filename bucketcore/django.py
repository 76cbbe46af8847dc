"""Rate limits for Django, kept at its short import path.

The code lives in ``bucketcore.integrations.django``.

>>> from bucketcore.django import RateLimitMiddleware
>>> RateLimitMiddleware.__module__
'bucketcore.integrations.django.middleware'
"""

# A re-export: every name below comes from the star import.
# ruff: noqa: F403, F405
from bucketcore.integrations.django import *

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
