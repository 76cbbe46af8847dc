"""Rate limits for Flask views, kept at its short import path.

The code lives in ``bucketcore.integrations.flask``.

>>> from bucketcore.flask import BucketCore
>>> BucketCore.__module__
'bucketcore.integrations.flask'
"""

# A re-export: the names and their list are the real module's.
# ruff: noqa: F403
from bucketcore.integrations.flask import *
from bucketcore.integrations.flask import __all__ as __all__
