"""Decision hooks (``on_decision=``), kept at its short import path.

The code lives in ``bucketcore.integrations.hooks``.

>>> from bucketcore.hooks import DecisionEvent
>>> DecisionEvent.__module__
'bucketcore.integrations.hooks'
"""

# A re-export: every name below comes from the star import.
# ruff: noqa: F403, F405
from bucketcore.integrations.hooks import *

__all__ = [
    "DecisionEvent",
    "Hook",
    "Hooks",
    "Outcome",
    "emit",
    "hooks_tuple",
]
