"""ASGI middleware for Starlette, FastAPI or any ASGI app, kept at its short import path.

The code lives in ``bucketcore.integrations.asgi``.

>>> from bucketcore.asgi import RateLimitMiddleware
>>> RateLimitMiddleware.__module__
'bucketcore.integrations.asgi'
"""

# A re-export: every name below comes from the star import.
# ruff: noqa: F403, F405
from bucketcore.integrations.asgi import *

__all__ = [
    "RateLimitMiddleware",
    "Rule",
    "ScopeKeyFunc",
    "by_api_key",
    "by_header",
    "by_ip",
    "by_user",
    "route_templates",
    "rule",
]
