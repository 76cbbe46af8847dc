"""The Django app: in ``INSTALLED_APPS`` it registers the start-up check early.

``INSTALLED_APPS = [..., "bucketcore.integrations.django"]``
"""

from __future__ import annotations

from django.apps import AppConfig

__all__ = ["BucketCoreConfig"]


class BucketCoreConfig(AppConfig):  # type: ignore[misc]  # Django has no type hints
    """Registers ``checks.check_rate_limits`` when Django starts."""

    name = "bucketcore.integrations.django"
    label = "bucketcore"
    verbose_name = "bucketcore rate limits"

    def ready(self) -> None:
        from bucketcore.integrations.django import checks  # noqa: F401 - registers the check
