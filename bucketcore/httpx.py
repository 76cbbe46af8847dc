"""Transports for httpx that pace calls to someone else's API, at a short import path.

The code lives in ``bucketcore.integrations.httpx``.

>>> from bucketcore.httpx import RateLimitedTransport
>>> RateLimitedTransport.__module__
'bucketcore.integrations.httpx'
"""

# A re-export: the names and their list are the real module's.
# ruff: noqa: F403
from bucketcore.integrations.httpx import *
from bucketcore.integrations.httpx import __all__ as __all__
