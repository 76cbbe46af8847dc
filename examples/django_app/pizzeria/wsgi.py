"""WSGI entry point: ``gunicorn --chdir examples/django_app pizzeria.wsgi``."""

from __future__ import annotations

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pizzeria.settings")
application = get_wsgi_application()
