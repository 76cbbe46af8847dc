"""The ``bucketcore`` command, kept at its short import path.

The code lives in ``bucketcore.integrations.cli``.

>>> from bucketcore.cli import main
>>> main.__module__
'bucketcore.integrations.cli'
"""

# A re-export: the names and their list are the real module's.
# ruff: noqa: F403
from bucketcore.integrations.cli import *
from bucketcore.integrations.cli import __all__ as __all__
