"""Decision hooks (``on_decision=``), kept at its short import path.

The code lives in ``bucketcore.integrations.hooks``.

>>> from bucketcore.hooks import DecisionEvent
>>> DecisionEvent.__module__
'bucketcore.integrations.hooks'
"""

# A re-export: the names and their list are the real module's.
# ruff: noqa: F403
from bucketcore.integrations.hooks import *
from bucketcore.integrations.hooks import __all__ as __all__
