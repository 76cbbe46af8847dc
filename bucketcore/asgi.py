"""ASGI middleware for Starlette, FastAPI or any ASGI app, kept at its short import path.

The code lives in ``bucketcore.integrations.asgi``.

>>> from bucketcore.asgi import RateLimitMiddleware
>>> RateLimitMiddleware.__module__
'bucketcore.integrations.asgi'
"""

# A re-export: the names and their list are the real module's.
# ruff: noqa: F403
from bucketcore.integrations.asgi import *
from bucketcore.integrations.asgi import __all__ as __all__
