"""``rate_limited`` for any function or block, kept at its short import path.

The code lives in ``bucketcore.integrations.guard``.

>>> from bucketcore.guard import rate_limited
>>> rate_limited.__module__
'bucketcore.integrations.guard'
"""

# A re-export: every name below comes from the star import.
# ruff: noqa: F403, F405
from bucketcore.integrations.guard import *

__all__ = [
    "rate_limited",
]
