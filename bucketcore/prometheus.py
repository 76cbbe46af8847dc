"""Prometheus counters for decisions, kept at its short import path.

The code lives in ``bucketcore.integrations.prometheus``.

>>> from bucketcore.prometheus import PrometheusHook
>>> PrometheusHook.__module__
'bucketcore.integrations.prometheus'
"""

# A re-export: the names and their list are the real module's.
# ruff: noqa: F403
from bucketcore.integrations.prometheus import *
from bucketcore.integrations.prometheus import __all__ as __all__
