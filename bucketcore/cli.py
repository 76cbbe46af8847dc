"""The ``bucketcore`` command, kept at its short import path.

The code lives in ``bucketcore.integrations.cli``.

>>> from bucketcore.cli import main
>>> main.__module__
'bucketcore.integrations.cli'
"""

# A re-export: every name below comes from the star import.
# ruff: noqa: F403, F405
from bucketcore.integrations.cli import *

__all__ = [
    "bucket_state",
    "main",
    "parse_limit",
]
