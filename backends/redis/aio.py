"""``AsyncRedisStore``: ``RedisStore`` for asyncio, over ``redis.asyncio``.

It sends and receives only, like ``sync``; what it adds is that concurrent
calls share script runs (``_flush``), so N tasks cost about one round trip
per N decisions.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any

import redis.asyncio
import redis.asyncio.cluster
import redis.asyncio.sentinel
from redis.exceptions import ResponseError

from bucketcore._keys import Key
from bucketcore.decision import Decision
from bucketcore.errors import BucketError, ConfigurationError, StoreError, StoreUnavailable
from bucketcore.limit import Limit
from bucketcore.store import Request

from .breaker import CLOSED, REFUSED
from .calls import Calls, Decide
from .errors import ERRORS, chained, map_error
from .options import Settings
from .policy import breaker_for
from .runs import Entry, Many, build_runs, spread
from .script import packed, recover, settled
from .sentinel import AsyncSwitchWatch

__all__ = ["AsyncRedisStore"]


class AsyncRedisStore:
    """An ``AsyncStore`` over ``redis.asyncio`` (``Redis`` or ``RedisCluster``).

    >>> store = AsyncRedisStore(redis.asyncio.Redis(port=1), on_error="allow")
    >>> store.calls.policy.on_error
    'allow'
    """

    def __init__(self, client: Any, **options: object) -> None:
        cluster = isinstance(client, redis.asyncio.cluster.RedisCluster)
        if not cluster and not isinstance(client, redis.asyncio.Redis):
            raise ConfigurationError(
                f"client must be a redis.asyncio client (sync ones: RedisStore), got {client!r}"
            )
        settings = Settings(options).only_store_options("AsyncRedisStore")
        self.calls = Calls(settings, cluster)
        self.breaker = breaker_for(settings, self.calls.policy)
        self.client = client
        self._closed = False
        self._owned = False
        self._ready = False
        pool = getattr(client, "connection_pool", None)
        self._watch = (
            AsyncSwitchWatch(pool.sentinel_manager, pool.service_name)
            if isinstance(pool, redis.asyncio.sentinel.SentinelConnectionPool)
            else None
        )
        self._queue: list[tuple[Entry, asyncio.Future[Any]]] = []
        self._flusher: asyncio.Task[None] | None = None

    # the AsyncStore contract

    async def acquire(self, key: Key, limits: tuple[Limit, ...], cost: int) -> Decision:
        return await self._run(self.calls.acquire(key, limits, cost))  # type: ignore[return-value]

    async def try_acquire(self, key: Key, limits: tuple[Limit, ...], cost: int) -> bool:
        return await self._run(self.calls.try_acquire(key, limits, cost))  # type: ignore[return-value]

    async def peek(self, key: Key, limits: tuple[Limit, ...], cost: int) -> Decision:
        return await self._run(self.calls.peek(key, limits, cost))  # type: ignore[return-value]

    async def acquire_many(self, requests: Sequence[Request]) -> list[Decision]:
        many = Many(self.calls, requests)
        if not many.commands:
            return many.finish([])
        return many.finish(await self._send_runs_past_breaker(many.commands))

    async def refund(self, key: Key, limits: tuple[Limit, ...], tokens: int) -> None:
        call = self.calls.refund(key, limits, tokens)
        try:
            reply = await self._past_breaker(self._send_one(call.command))
        except StoreUnavailable as exc:
            call.fail(exc)
        else:
            call.finish(reply)

    async def drain(self, key: Key, limits: tuple[Limit, ...], seconds_ns: int) -> None:
        call = self.calls.drain(key, limits, seconds_ns)
        call.finish(await self._past_breaker(self._send_one(call.command)))

    async def reset(self, key: Key, limits: tuple[Limit, ...]) -> None:
        try:
            await self._past_breaker(self._delete(self.calls.reset(key, limits)))
        except StoreUnavailable as exc:
            self.calls.policy.reset(key, limits, exc)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._watch is not None:
            await self._watch.close()
            if self._owned:  # the sentinels' clients are ours too
                for sentinel in self.client.connection_pool.sentinel_manager.sentinels:
                    await sentinel.aclose()
        if self._owned:
            await self.client.aclose()

    # sending and receiving

    async def _run(self, call: Decide) -> Decision | bool:
        if call.answer is not None:
            return call.answer
        breaker = self.breaker
        if breaker.is_open and breaker.refuses():  # at once: not even queued
            return call.fail(breaker.refusal())
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._queue.append((call.entry(), future))
        flusher = self._flusher
        if flusher is None or flusher.done() or flusher.get_loop() is not loop:
            self._flusher = loop.create_task(self._flush())
        try:
            reply = await future
        except StoreUnavailable as exc:
            return call.fail(exc)
        return call.finish(reply)

    async def _flush(self) -> None:
        """Decide every queued call in as few script runs as possible.

        The calls that arrive while a run is in flight wait for the next one,
        so N concurrent tasks cost about one round trip per N decisions, not
        N round trips. Each call is still decided exactly once, on its own.
        On a cluster the runs are per slot, all in flight at once.
        """
        queue: list[tuple[Entry, asyncio.Future[Any]]] = []
        try:
            while self._queue:
                queue, self._queue = self._queue, []
                entries = [entry for entry, _ in queue]
                runs = build_runs(entries, self.calls.cluster)
                replies = await self._send_runs_past_breaker([command for _, command in runs])
                for (_, future), reply in zip(queue, spread(runs, replies, entries), strict=True):
                    if future.done():  # its caller was cancelled
                        continue
                    if isinstance(reply, BaseException):
                        future.set_exception(reply)
                    else:
                        future.set_result(reply)
                queue = []
        except BaseException as exc:
            error = exc if isinstance(exc, Exception) else StoreError(f"cancelled: {exc!r}")
            for _, future in queue + self._queue:
                if not future.done():
                    future.set_exception(error)
            self._queue = []
            if not isinstance(exc, Exception):
                raise

    async def _past_breaker(self, sending: Awaitable[Any]) -> Any:
        """``await sending``, or ``StoreUnavailable`` at once while the breaker is open."""
        if self._watch is not None and await self._watch.switched():
            await self.client.connection_pool.disconnect()
        breaker = self.breaker
        ticket = breaker.admit() if breaker.is_open else CLOSED
        if ticket == REFUSED:
            if isinstance(sending, Coroutine):
                sending.close()  # never awaited: nothing was sent
            raise breaker.refusal()
        try:
            reply = await sending
        except StoreUnavailable as exc:
            breaker.failed(ticket, exc)
            raise
        except Exception:  # Redis answered, with an error
            breaker.succeeded(ticket)
            raise
        except BaseException:
            breaker.abandoned(ticket)
            raise
        breaker.succeeded(ticket)
        return reply

    async def _send_runs_past_breaker(self, commands: list[Any]) -> list[Any]:
        """``_send_runs``, or each run refused at once while the breaker is open."""
        if self._watch is not None and await self._watch.switched():
            # The sentinels named a new master: no call may go to the old one.
            await self.client.connection_pool.disconnect()
        breaker = self.breaker
        ticket = breaker.admit() if breaker.is_open else CLOSED
        if ticket == REFUSED:
            return [breaker.refusal()] * len(commands)
        try:
            replies = await self._send_runs(commands)
        except BaseException:
            breaker.abandoned(ticket)
            raise
        down = next((r for r in replies if isinstance(r, StoreUnavailable)), None)
        if down is not None:
            breaker.failed(ticket, down)
        else:
            breaker.succeeded(ticket)
        return replies

    async def _delete(self, keys: list[bytes]) -> None:
        try:
            await self.client.delete(*keys)
        except ERRORS as exc:
            raise map_error(exc) from exc

    async def _send_one(self, command: list[Any]) -> Any:
        """One command's reply; any error raised as a bucketcore error."""
        try:
            if self.calls.cluster:
                client = self.client
                if not self._ready:
                    await client.initialize()  # the asyncio cluster learns its slots lazily
                    self._ready = True
                node = client.get_node_from_key(command[3])
                replies = await _drive([command], lambda commands: _execute(client, node, commands))
            else:
                pool = self.client.connection_pool
                conn = await pool.get_connection()
                try:
                    replies = await _drive([command], lambda commands: _exchange(conn, commands))
                finally:
                    await pool.release(conn)
        except ERRORS as exc:
            raise map_error(exc) from exc
        if isinstance(replies[0], BaseException):
            raise map_error(replies[0]) from replies[0]
        return replies[0]

    async def _send_runs(self, commands: list[Any]) -> list[Any]:
        """Each run's reply, or its error: one pipeline, or on a cluster all at once."""
        if not commands:
            return []
        if self.calls.cluster:
            # redis.asyncio's cluster lends no node connection to pipeline raw
            # commands on: each run is its own call, all in flight at once.
            async def one(command: list[Any]) -> Any:
                try:
                    return await self._send_one(command)
                except BucketError as exc:
                    return exc

            return list(await asyncio.gather(*(one(command) for command in commands)))
        pool = self.client.connection_pool
        try:
            conn = await pool.get_connection()
        except ERRORS as exc:
            return [chained(exc)] * len(commands)
        try:
            replies = await _drive(commands, lambda commands: _exchange(conn, commands))
            return [chained(r) if isinstance(r, BaseException) else r for r in replies]
        except ERRORS as exc:
            return [chained(exc)] * len(commands)
        finally:
            await pool.release(conn)


async def _drive(
    commands: list[Any], send: Callable[[list[Any]], Awaitable[list[Any]]]
) -> list[Any]:
    """``send(commands)``, and what ``script.recover`` asks to send again, if anything."""
    replies = await send(commands)
    if settled(replies):  # the common case: nothing to reload or convert
        return replies
    flow = recover(commands, replies)
    try:
        again = next(flow)
        while True:
            again = flow.send(await send(again))
    except StopIteration:
        return replies


async def _exchange(conn: Any, commands: list[Any]) -> list[Any]:
    """Write ``commands`` in one go, then a reply (or that command's error) for each.

    A connection that fails midway is closed (replies still on the way
    would answer the next caller); the commands it did not answer get its error.
    """
    replies: list[Any] = []
    try:
        await conn.send_packed_command([b"".join([packed(conn, command) for command in commands])])
        for _ in commands:
            try:
                replies.append(await conn.read_response())
            except ResponseError as exc:  # one command's error; the rest still follow
                replies.append(exc)
    except ERRORS as exc:
        await conn.disconnect()
        replies += [exc] * (len(commands) - len(replies))
    return replies


async def _execute(client: Any, node: Any, commands: list[Any]) -> list[Any]:
    """``_exchange`` on a cluster node, through the cluster client."""
    replies: list[Any] = []
    for command in commands:
        try:
            replies.append(await client.execute_command(*command, target_nodes=node))
        except ResponseError as exc:
            replies.append(exc)
    return replies
