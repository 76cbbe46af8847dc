"""Rate limits for Django, kept at its short import path.

The code lives in ``bucketcore.integrations.django``.

>>> from bucketcore.django import RateLimitMiddleware
>>> RateLimitMiddleware.__module__
'bucketcore.integrations.django.middleware'
"""

# A re-export: the names and their list are the real module's.
# ruff: noqa: F403
from bucketcore.integrations.django import *
from bucketcore.integrations.django import __all__ as __all__
