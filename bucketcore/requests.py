"""An adapter for requests that paces calls to someone else's API, at a short import path.

The code lives in ``bucketcore.integrations.requests``.

>>> from bucketcore.requests import RateLimitedAdapter
>>> RateLimitedAdapter.__module__
'bucketcore.integrations.requests'
"""

# A re-export: the names and their list are the real module's.
# ruff: noqa: F403
from bucketcore.integrations.requests import *
from bucketcore.integrations.requests import __all__ as __all__
