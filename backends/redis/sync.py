"""``RedisStore``: sends the call objects' commands and receives their replies.

Everything else (commands, replies, the deny cache, the failure policy) is
in ``calls`` and ``runs``; ``aio`` is the same store for asyncio.
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Callable, Sequence
from typing import Any

import redis
import redis.asyncio
import redis.asyncio.cluster
import redis.cluster
import redis.sentinel
from redis.exceptions import ResponseError

from bucketcore._keys import Key
from bucketcore.decision import Decision
from bucketcore.errors import BucketError, ConfigurationError, StoreUnavailable
from bucketcore.limit import Limit
from bucketcore.store import Request

from .breaker import CLOSED, REFUSED
from .calls import Calls, Decide, Refund
from .errors import ERRORS, chained, is_redirect, map_error
from .options import Settings
from .policy import breaker_for
from .runs import Many
from .script import packed, recover, settled
from .sentinel import SwitchWatch

__all__ = ["RedisStore"]


class RedisStore:
    """A ``Store`` over Redis or Redis Cluster; thread-safe.

    Give a URL's parts through ``open_store`` (``Limiter("redis://...")``)
    or your own client: ``redis.Redis`` or ``redis.cluster.RedisCluster``.
    The decision command is sent on a connection of the client's pool, past
    the client's ``Retry``, which then only guards connection set-up. No
    connection is made until the first call:

    >>> store = RedisStore(redis.Redis(port=1), prefix="app:")
    >>> store.calls.keys("alice", (Limit(10, 1.0, name="api"),))
    [b'app:{alice}n:api']
    >>> store.close()
    """

    def __init__(self, client: Any, **options: object) -> None:
        if isinstance(client, redis.asyncio.Redis | redis.asyncio.cluster.RedisCluster):
            raise ConfigurationError(
                "an asyncio client needs AsyncRedisStore (for AsyncLimiter), not RedisStore"
            )
        cluster = isinstance(client, redis.cluster.RedisCluster)
        if not cluster and not isinstance(client, redis.Redis):
            raise ConfigurationError(f"client must be a redis-py client, got {client!r}")
        settings = Settings(options).only_store_options("RedisStore")
        self.calls = Calls(settings, cluster)
        self.breaker = breaker_for(settings, self.calls.policy)
        self.client = client
        self._closed = False
        self._owned = False
        # Connections this store took from the client's pool and keeps: the
        # pool's own bookkeeping costs about as much as the round trip. A
        # store dropped without close() gives them back (the pool is the user's).
        self._idle: list[Any] = []
        # Bumped when the sentinels name a new master: a kept connection made
        # before (perhaps in another thread's hands then) reconnects before use.
        self._generation = 0
        if not cluster:
            self._release = weakref.finalize(self, _give_back, client.connection_pool, self._idle)
        pool = getattr(client, "connection_pool", None)
        self._watch = (
            SwitchWatch(pool.sentinel_manager, pool.service_name)
            if isinstance(pool, redis.sentinel.SentinelConnectionPool)
            else None
        )
        _STORES.add(self)

    # the Store contract

    def acquire(self, key: Key, limits: tuple[Limit, ...], cost: int) -> Decision:
        return self._run(self.calls.acquire(key, limits, cost))  # type: ignore[return-value]

    def try_acquire(self, key: Key, limits: tuple[Limit, ...], cost: int) -> bool:
        return self._run(self.calls.try_acquire(key, limits, cost))  # type: ignore[return-value]

    def peek(self, key: Key, limits: tuple[Limit, ...], cost: int) -> Decision:
        return self._run(self.calls.peek(key, limits, cost))  # type: ignore[return-value]

    def acquire_many(self, requests: Sequence[Request]) -> list[Decision]:
        many = Many(self.calls, requests)
        if not many.commands:
            return many.finish([])
        if self._watch is not None and self._watch.switched():
            self._forget_master()
        breaker = self.breaker
        ticket = breaker.admit() if breaker.is_open else CLOSED
        if ticket == REFUSED:
            return many.finish([breaker.refusal()] * len(many.commands))
        try:
            replies = self._send_runs(many.commands)
        except BaseException:
            breaker.abandoned(ticket)
            raise
        down = next((r for r in replies if isinstance(r, StoreUnavailable)), None)
        if down is not None:
            breaker.failed(ticket, down)
        else:
            breaker.succeeded(ticket)
        return many.finish(replies)

    def refund(self, key: Key, limits: tuple[Limit, ...], tokens: int) -> None:
        self._run(self.calls.refund(key, limits, tokens))

    def drain(self, key: Key, limits: tuple[Limit, ...], seconds_ns: int) -> None:
        self._run(self.calls.drain(key, limits, seconds_ns))

    def reset(self, key: Key, limits: tuple[Limit, ...]) -> None:
        try:
            self._past_breaker(self._delete, self.calls.reset(key, limits))
        except StoreUnavailable as exc:
            self.calls.policy.reset(key, limits, exc)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if not self.calls.cluster:
            self._release()
        if self._watch is not None:
            self._watch.close()
            if self._owned:  # the sentinels' clients are ours too
                for sentinel in self.client.connection_pool.sentinel_manager.sentinels:
                    sentinel.close()
        if self._owned:
            self.client.close()

    # sending and receiving

    def _run(self, call: Decide | Refund) -> Decision | bool | None:
        if call.answer is not None:
            return call.answer
        try:
            reply = self._past_breaker(self._send_one, call.command)
        except StoreUnavailable as exc:
            return call.fail(exc)
        return call.finish(reply)

    def _past_breaker(self, send: Callable[[Any], Any], what: Any) -> Any:
        """``send(what)``, or ``StoreUnavailable`` at once while the breaker is open."""
        if self._watch is not None and self._watch.switched():
            self._forget_master()
        breaker = self.breaker
        ticket = breaker.admit() if breaker.is_open else CLOSED
        if ticket == REFUSED:
            raise breaker.refusal()
        try:
            reply = send(what)
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

    def _forget_master(self) -> None:
        """The sentinels named a new master: no call may go to the old one on a kept connection."""
        self._generation += 1
        pool = self.client.connection_pool
        _give_back(pool, self._idle)
        # Not the connections other threads are using now: closing a socket
        # under a call breaks it with a bare TypeError. They reconnect when
        # next taken (_take), and a demoted master answers them READONLY.
        pool.disconnect(inuse_connections=False)

    def _delete(self, keys: list[bytes]) -> None:
        try:
            self.client.delete(*keys)
        except ERRORS as exc:
            raise map_error(exc) from exc

    def _send_one(self, command: list[Any]) -> Any:
        """One command's reply; any error raised as a bucketcore error."""
        try:
            if self.calls.cluster:
                # Naming the node turns off RedisCluster's retry of the whole
                # command (it still follows MOVED and ASK: the script did not run).
                client = self.client
                node = client.get_node_from_key(command[3])
                reply = _drive([command], lambda commands: _execute(client, node, commands))[0]
            else:
                conn = self._take()
                try:
                    reply = _drive([command], lambda commands: _exchange(conn, commands))[0]
                finally:
                    self._idle.append(conn)
        except ERRORS as exc:
            raise map_error(exc) from exc
        if isinstance(reply, BaseException):
            raise map_error(reply) from reply
        return reply

    def _send_runs(self, commands: list[Any]) -> list[Any]:
        """Each run's reply, or its error: one pipeline per server."""
        if not commands:
            return []
        if not self.calls.cluster:
            return self._pipeline(None, commands)
        client = self.client
        groups: dict[str, list[int]] = {}
        nodes: dict[str, Any] = {}
        replies: list[Any] = [None] * len(commands)
        for index, command in enumerate(commands):
            try:
                node = client.get_node_from_key(command[3])
            except ERRORS as exc:
                replies[index] = chained(exc)
                continue
            groups.setdefault(node.name, []).append(index)
            nodes[node.name] = node
        for name, indexes in groups.items():
            pool = client.get_redis_connection(nodes[name]).connection_pool
            for index, reply in zip(
                indexes, self._pipeline(pool, [commands[i] for i in indexes]), strict=True
            ):
                replies[index] = reply
        for index, reply in enumerate(replies):
            if isinstance(reply, BucketError) and is_redirect(reply.__cause__ or reply):
                try:  # MOVED, ASK, TRYAGAIN: the script did not run there; follow it
                    replies[index] = self._send_one(commands[index])
                except BucketError as exc:
                    replies[index] = exc
        return replies

    def _pipeline(self, pool: Any, commands: list[Any]) -> list[Any]:
        """Send ``commands`` at once on one connection (the store's own if no pool)."""
        try:
            conn = pool.get_connection() if pool is not None else self._take()
        except ERRORS as exc:
            return [chained(exc)] * len(commands)
        try:
            replies = _drive(commands, lambda commands: _exchange(conn, commands))
            return [chained(r) if isinstance(r, BaseException) else r for r in replies]
        except ERRORS as exc:
            return [chained(exc)] * len(commands)
        finally:
            if pool is not None:
                pool.release(conn)
            else:
                self._idle.append(conn)

    def _take(self) -> Any:
        """A connection of this store's own, connected and with nothing unread."""
        generation = self._generation
        try:
            conn = self._idle.pop()
        except IndexError:  # none idle (or another thread took the last one)
            conn = self.client.connection_pool.get_connection()
            conn.bucketcore_generation = generation
            return conn
        try:
            if getattr(conn, "bucketcore_generation", generation) != generation:
                conn.disconnect()  # made before the sentinels named a new master
                conn.bucketcore_generation = generation
            _freshen(conn)
        except BaseException:
            self._idle.append(conn)
            raise
        return conn


def _drive(commands: list[Any], send: Callable[[list[Any]], list[Any]]) -> list[Any]:
    """``send(commands)``, and what ``script.recover`` asks to send again, if anything."""
    replies = send(commands)
    if settled(replies):  # the common case: nothing to reload or convert
        return replies
    flow = recover(commands, replies)
    try:
        again = next(flow)
        while True:
            again = flow.send(send(again))
    except StopIteration:
        return replies


def _exchange(conn: Any, commands: list[Any]) -> list[Any]:
    """Write ``commands`` in one go, then a reply (or that command's error) for each.

    A connection that fails midway is closed (replies still on the way
    would answer the next caller); the commands it did not answer get its error.
    """
    replies: list[Any] = []
    try:
        conn.send_packed_command([b"".join([packed(conn, command) for command in commands])])
        for _ in commands:
            try:
                replies.append(conn.read_response())
            except ResponseError as exc:  # one command's error; the rest still follow
                replies.append(exc)
    except ERRORS as exc:
        conn.disconnect()
        replies += [exc] * (len(commands) - len(replies))
    return replies


def _execute(client: Any, node: Any, commands: list[Any]) -> list[Any]:
    """``_exchange`` on a cluster node, through the cluster client."""
    replies: list[Any] = []
    for command in commands:
        try:
            replies.append(client.execute_command(*command, target_nodes=node))
        except ResponseError as exc:
            replies.append(exc)
    return replies


def _freshen(conn: Any) -> None:
    """Reconnect a kept connection that has unread data or was closed by the server.

    The same check redis-py's pool makes before lending a connection; the
    reconnect goes through the connection's ``Retry`` (set-up is safe to retry).
    """
    try:
        if not conn.can_read():
            return
    except (redis.ConnectionError, redis.TimeoutError, OSError):
        pass
    conn.disconnect()
    conn.connect()


def _give_back(pool: Any, idle: list[Any]) -> None:
    """Return a store's kept connections to its client's pool (on close, or when dropped)."""
    while idle:
        pool.release(idle.pop())


_STORES: weakref.WeakSet[RedisStore] = weakref.WeakSet()


def _forget_connections_after_fork() -> None:
    # A child must not share its parent's sockets: let the pool, which checks
    # the pid itself, make new ones.
    for store in list(_STORES):
        store._idle.clear()


os.register_at_fork(after_in_child=_forget_connections_after_fork)
