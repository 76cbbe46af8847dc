"""The FastAPI dependency, kept at its short import path.

The code lives in ``bucketcore.integrations.fastapi``.

>>> from bucketcore.fastapi import RateLimit
>>> RateLimit.__module__
'bucketcore.integrations.fastapi'
"""

# A re-export: every name below comes from the star import.
# ruff: noqa: F403, F405
from bucketcore.integrations.fastapi import *

__all__ = ["RateLimit", "RequestKeyFunc", "by_api_key", "by_header", "by_ip", "by_user"]
