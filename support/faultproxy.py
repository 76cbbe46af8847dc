"""A TCP proxy that breaks on demand: stall, drop, half a reply, slow (tests and benchmarks).

It listens on a free loopback port and forwards every connection to a
target port, on an asyncio loop of its own thread. ``mode`` says what the
network does from now on, to every connection, old and new:

- ``pass``: forward both ways.
- ``stall``: accept and read, answer nothing (a server that hangs).
- ``drop``: close every connection, refuse new ones' traffic (a reset).
- ``half``: forward requests; of each reply send half, then nothing more.
- ``slow``: forward both ways, each chunk ``delay`` seconds late.

    >>> with FaultProxy(free_port()) as proxy:
    ...     proxy.mode = "stall"
    ...     proxy.port > 0
    True
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import Any

from support.servers import free_port

__all__ = ["MODES", "FaultProxy", "free_port"]

MODES = ("pass", "stall", "drop", "half", "slow")


class FaultProxy:
    """Forwards 127.0.0.1:``port`` to 127.0.0.1:``target``, breaking it as ``mode`` says."""

    def __init__(self, target: int, *, delay: float = 0.05) -> None:
        self.target = target
        self.delay = delay
        self.port = free_port()
        self._mode = "pass"
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def mode(self) -> str:
        return self._mode

    @mode.setter
    def mode(self, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(f"mode is one of {MODES}, got {mode!r}")
        self._mode = mode
        if mode == "drop":
            self._call(self._drop_all)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> FaultProxy:
        self._thread.start()
        self._call(self._listen)
        return self

    def close(self) -> None:
        if self._thread.is_alive():
            self._call(self._shut)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
        self._loop.close()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # on the proxy's loop

    def _call(self, make: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(make(), self._loop).result(timeout=10)

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def _shut(self) -> None:
        if self._server is not None:
            self._server.close()
        await self._drop_all()

    async def _drop_all(self) -> None:
        for writer in list(self._writers):
            writer.transport.abort()  # a reset, as when a server dies
        self._writers.clear()

    async def _serve(
        self, client_in: asyncio.StreamReader, client_out: asyncio.StreamWriter
    ) -> None:
        if self._mode == "drop":
            client_out.transport.abort()
            return
        try:
            server_in, server_out = await asyncio.open_connection("127.0.0.1", self.target)
        except OSError:
            client_out.transport.abort()
            return
        self._writers |= {client_out, server_out}
        try:
            await asyncio.gather(
                self._pump(client_in, server_out, replies=False),
                self._pump(server_in, client_out, replies=True),
            )
        finally:
            for writer in (client_out, server_out):
                self._writers.discard(writer)
                writer.transport.abort()

    async def _pump(
        self, source: asyncio.StreamReader, sink: asyncio.StreamWriter, *, replies: bool
    ) -> None:
        halved = False
        with contextlib.suppress(OSError, ConnectionError):
            while True:
                data = await source.read(65536)
                if not data:
                    break
                mode = self._mode
                if mode == "stall" or halved:
                    continue  # read and swallowed: the other side hears nothing
                if mode == "drop":
                    break
                if mode == "slow":
                    await asyncio.sleep(self.delay)
                if mode == "half" and replies:
                    data, halved = data[: max(1, len(data) // 2)], True
                sink.write(data)
                await sink.drain()
        sink.transport.abort()
