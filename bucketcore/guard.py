"""``rate_limited`` for any function or block, kept at its short import path.

The code lives in ``bucketcore.integrations.guard``.

>>> from bucketcore.guard import rate_limited
>>> rate_limited.__module__
'bucketcore.integrations.guard'
"""

# A re-export: the names and their list are the real module's.
# ruff: noqa: F403
from bucketcore.integrations.guard import *
from bucketcore.integrations.guard import __all__ as __all__
