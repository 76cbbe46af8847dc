"""The bench_*.py suites' Redis servers: our own, as the runner starts them.

A standalone server and a 3-master cluster on free loopback ports
(``support/servers.py``), started once per session; without a server binary
the Redis benchmarks skip, and fail under ``CI=true``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from support import servers
from support.servers import RedisCluster3, RedisProcess, Servers


@pytest.fixture(scope="session")
def running_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    servers.require()
    with servers.started(tmp_path_factory.mktemp("servers")) as running:
        yield running


@pytest.fixture
def redis_server(running_servers: Servers) -> RedisProcess:
    return running_servers.standalone


@pytest.fixture
def redis_cluster(running_servers: Servers) -> RedisCluster3 | None:
    return running_servers.cluster


@pytest.fixture
def redis_prefix() -> str:
    return servers.unique_prefix()
