"""The benchmarks use the test suite's real servers (tests/redis_servers.py)."""

from tests.redis_servers import redis_prefix, redis_server  # noqa: F401 - fixtures by name
