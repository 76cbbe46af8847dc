"""The benchmarks use the test suite's real servers (tests/redis_servers.py).

A standalone server and a 3-master cluster on free loopback ports, started
once per session (skipped without a server binary, failed under CI).
"""

from tests.redis_servers import (  # noqa: F401 - fixtures are found by name
    redis_cluster,
    redis_prefix,
    redis_server,
)
