"""Settings of the Django demo: ``BUCKETCORE_URL`` picks the store.

Run it on ``memory://`` (the default), ``rocksdb://./demo-data`` or
``redis://localhost:6379/0``: set the ``BUCKETCORE_URL`` environment
variable, as for the Flask demo.
"""

from __future__ import annotations

import os

DEBUG = False
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "the-bucketcore-demo-has-no-secrets")
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]
ROOT_URLCONF = "pizzeria.urls"
WSGI_APPLICATION = "pizzeria.wsgi.application"
DATABASES: dict[str, object] = {}

INSTALLED_APPS = ["bucketcore.integrations.django"]  # the start-up check
MIDDLEWARE = [
    # Before the limits: a request without credentials is told to
    # authenticate (401) rather than counted.
    "pizzeria.views.require_user",
    "bucketcore.django.RateLimitMiddleware",
]

# The store: the BUCKETCORE_URL environment variable, else memory://.
BUCKETCORE_URL = os.environ.get("BUCKETCORE_URL") or "memory://"
BUCKETCORE_KEY = "bucketcore.django.by_basic_auth"
BUCKETCORE_ON_STORE_ERROR = "503"
