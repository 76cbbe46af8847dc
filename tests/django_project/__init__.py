"""A Django project for the tests: settings made here, in this process only.

Django's settings can be configured once per process; no other test module
imports Django, so configuring them here affects nothing else. Tests change
them with ``override_settings`` (bucketcore re-reads its settings then).
"""

from __future__ import annotations

import django
from django.conf import settings

MIDDLEWARE = ["bucketcore.django.RateLimitMiddleware"]


def configure() -> None:
    if settings.configured:
        return
    settings.configure(
        DEBUG=False,
        SECRET_KEY="tests-only",  # noqa: S106
        ALLOWED_HOSTS=["testserver", "127.0.0.1"],
        ROOT_URLCONF="tests.django_project.urls",
        INSTALLED_APPS=["rest_framework", "bucketcore.integrations.django"],
        MIDDLEWARE=MIDDLEWARE,
        DATABASES={},
        BUCKETCORE_URL="memory://",
        REST_FRAMEWORK={
            "DEFAULT_AUTHENTICATION_CLASSES": [],
            "DEFAULT_PERMISSION_CLASSES": [],
            "UNAUTHENTICATED_USER": None,
            "DEFAULT_THROTTLE_CLASSES": ["bucketcore.django.RateLimitThrottle"],
            "DEFAULT_THROTTLE_RATES": {"api": "3/minute", "orders": "2/minute"},
        },
    )
    django.setup()
