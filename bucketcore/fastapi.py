"""The FastAPI dependency, kept at its short import path.

The code lives in ``bucketcore.integrations.fastapi``.

>>> from bucketcore.fastapi import RateLimit
>>> RateLimit.__module__
'bucketcore.integrations.fastapi'
"""

# A re-export: the names and their list are the real module's.
# ruff: noqa: F403
from bucketcore.integrations.fastapi import *
from bucketcore.integrations.fastapi import __all__ as __all__
