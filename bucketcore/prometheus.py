"""Prometheus counters for decisions, kept at its short import path.

The code lives in ``bucketcore.integrations.prometheus``.

>>> from bucketcore.prometheus import PrometheusHook
>>> PrometheusHook.__module__
'bucketcore.integrations.prometheus'
"""

# A re-export: every name below comes from the star import.
# ruff: noqa: F403, F405
from bucketcore.integrations.prometheus import *

__all__ = [
    "PrometheusHook",
]
