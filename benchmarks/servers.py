"""The benchmark's own Redis servers: one standalone and a 3-master cluster.

They reuse the test suite's server fixtures module (``tests/redis_servers.py``,
from the Redis backend), on free loopback ports with their data under
``.bench-data/``; a Redis already running on 6379 is never touched.
"""

from __future__ import annotations

import inspect
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.harness import progress


@dataclass
class Servers:
    standalone: Any  # tests.redis_servers.RedisProcess
    cluster: Any | None  # tests.redis_servers.RedisCluster3
    version: str


def missing() -> str | None:
    """Why no servers can be started here, or None."""
    try:
        import redis  # noqa: F401

        from tests import redis_servers  # noqa: F401
    except Exception as exc:
        return f"redis-py or tests/redis_servers.py not importable ({exc})"
    from tests.redis_servers import find_server

    if find_server("redis") is None and find_server("valkey") is None:
        return "no redis-server (or valkey-server) binary found"
    return None


@contextmanager
def started(root: Path | None = None, *, cluster: bool = True) -> Iterator[Servers]:
    """A standalone server and, with ``cluster``, a 3-master cluster, killed afterwards."""
    from tests.redis_servers import RedisCluster3, RedisProcess, find_server

    binary = find_server("redis") or find_server("valkey")
    if binary is None:
        raise RuntimeError("no redis-server (or valkey-server) binary found")
    base = (
        root if root is not None else Path.cwd() / ".bench-data"
    ) / f"redis-{uuid.uuid4().hex[:6]}"
    version = subprocess.run(
        [binary, "--version"], capture_output=True, text=True, check=False
    ).stdout.split()
    standalone = RedisProcess(binary, base / "standalone")
    the_cluster = None
    try:
        progress(f"  starting redis-server on 127.0.0.1:{standalone.port}")
        standalone.start()
        if cluster:
            the_cluster = RedisCluster3(binary, base / "cluster")
            ports = ", ".join(str(node.port) for node in the_cluster.nodes)
            progress(f"  starting a 3-master Redis Cluster on 127.0.0.1:{ports}")
            if "cli" in inspect.signature(the_cluster.start).parameters:
                the_cluster.start(shutil.which("redis-cli"))  # the fixtures' first version
            else:
                the_cluster.start()
        found = next((word[2:] for word in version if word.startswith("v=")), "?")
        yield Servers(standalone, the_cluster, found)
    finally:
        standalone.kill()
        if the_cluster is not None:
            the_cluster.kill()
        shutil.rmtree(base, ignore_errors=True)
