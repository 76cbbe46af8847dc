#!/usr/bin/env python
"""The Django demo: ``python examples/django_app/manage.py runserver``.

The same pizzeria as examples/web_app.py (Flask): /, /pizza, /pasta,
/icecream and /healthz, per HTTP basic-auth user, with the same answers.
"""

from __future__ import annotations

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pizzeria.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
