"""Not collected: these modules need Django's settings, which the tests make
(tests/test_django.py) or a server process makes (pizzeria_workers.py)."""

collect_ignore_glob = ["*.py"]
