"""Rate limits for Flask views, kept at its short import path.

The code lives in ``bucketcore.integrations.flask``.

>>> from bucketcore.flask import BucketCore
>>> BucketCore.__module__
'bucketcore.integrations.flask'
"""

# A re-export: every name below comes from the star import.
# ruff: noqa: F403, F405
from bucketcore.integrations.flask import *

__all__ = [
    "BucketCore",
    "KeyFunc",
    "by_api_key",
    "by_header",
    "by_ip",
    "by_user",
    "exempt",
    "limit",
]
