"""Fixtures for the pytest-benchmark suites: the Redis backend's test servers.

The servers come from ``tests/redis_servers.py`` (the Redis backend's
fixtures module): a standalone server and a 3-master cluster on free
loopback ports, started once per session. Until that module exists the
Redis benchmarks skip.
"""

from __future__ import annotations

import importlib.util

if importlib.util.find_spec("tests.redis_servers") is not None:
    from tests.redis_servers import (  # noqa: F401 - fixtures are found by name
        redis_cluster,
        redis_prefix,
        redis_server,
    )
