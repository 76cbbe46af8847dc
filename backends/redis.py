"""``redis://`` and ``redis+cluster://``: exact limits shared by many processes.

Every call is decided by ``lua/gcra.lua`` in one ``EVALSHA``: all limits of
the call, all-or-nothing, with the server's ``TIME`` as the only clock
(``acquire_many`` and concurrent asyncio calls share script runs, each call
still decided on its own). The script answers each bucket's debt at that
instant and the client derives every ``Decision`` field from it with
``bucketcore._gcra.evaluate``, the very function the memory store uses, so
the two backends cannot disagree.

Keys are ``<prefix>{<escaped key>}<limit identity>``: the hash tag holds the
escaped user key, so every limit of one key lands in one cluster slot, and
no two (limit, key) pairs can share a Redis key (see ``escape_key``).

The decision command is never retried: redis-py's ``Retry`` would re-run a
script whose reply was lost and charge twice. Only connection set-up is
retried (``connect_retries``); ``NOSCRIPT`` (a restart, failover or
``SCRIPT FLUSH``) means the script did not run, so it is loaded and run
once.

Options (URL query or keywords): ``prefix`` (default ``bucketcore:``, no
braces), ``timeout`` (seconds per command, default 1.0), ``connect_timeout``
(default ``timeout``), ``connect_retries`` (default 1), ``on_error``
(``raise`` | ``allow`` | ``deny``), ``deny_cache`` (default true),
``deny_cache_size`` (keys, default 10000), ``max_connections``, ``db`` and,
for ``rediss://``, ``ssl_ca_certs``, ``ssl_certfile``, ``ssl_keyfile``,
``ssl_cert_reqs`` (``required`` | ``optional`` | ``none``) and
``ssl_check_hostname``.

Exactness: the script keeps a bucket's theoretical arrival time as whole
microseconds plus a remainder in GCRA units, all integers below 2^53 in
Lua's doubles. That holds for every limit whose burst refills within
2^50 microseconds (about 35 years) and whose rate gives at most 2^52 units
per microsecond (``1000 * units_per_ns``, i.e. ``tokens / gcd(tokens,
period_ns)`` at most about 4.5e12); other limits raise ``ConfigurationError``
on first use. Requires Redis 6.0+ (or Valkey).

The deny cache: after a denial, repeat calls for that bucket set are decided
locally from the debts Redis reported, for as long as those debts still deny
them (exact fields, elapsed time from before the denial was asked), so an
abusive client costs no round trip. A ``refund`` or ``reset``
through this store clears it; one from another process is seen here only
once the cached denial has run out (tokens can otherwise only appear with
time). Turn it off with ``deny_cache=false``.

>>> limiter = Limiter("redis://localhost:6379/0?prefix=app:")  # doctest: +SKIP
>>> limiter.acquire("alice", Limit(10, 1.0)).remaining  # doctest: +SKIP
9
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import os
import threading
import time
import weakref
from collections.abc import Sequence
from importlib import resources
from typing import Any
from urllib.parse import SplitResult, urlunsplit

from bucketcore._gcra import NEVER, Step, decision_from_steps, evaluate
from bucketcore._keys import Key, key_bytes
from bucketcore.decision import Decision, from_nanoseconds, make_decision
from bucketcore.errors import (
    BucketError,
    ConfigurationError,
    CorruptState,
    StoreError,
    StoreUnavailable,
)
from bucketcore.limit import Limit
from bucketcore.store import Clock, Request, split_options

try:
    import redis
    import redis.asyncio
    import redis.asyncio.cluster
    import redis.cluster
    from redis.backoff import ExponentialBackoff
    from redis.crc import key_slot
    from redis.exceptions import (
        AskError,
        AuthenticationError,
        AuthorizationError,
        ClusterDownError,
        NoPermissionError,
        NoScriptError,
        ReadOnlyError,
        RedisClusterException,
        RedisError,
        ResponseError,
        TryAgainError,
    )
    from redis.retry import Retry
except ImportError as exc:  # tests/test_redis.py hides redis-py to check this
    raise ConfigurationError(
        f"the Redis backend needs redis-py: pip install 'bucketcore[redis]' ({exc})"
    ) from exc

__all__ = [
    "SCRIPT",
    "SCRIPT_SHA",
    "AsyncRedisStore",
    "RedisStore",
    "escape_key",
    "map_error",
    "open_async_store",
    "open_store",
]

_LOG = logging.getLogger("bucketcore.redis")

_pack_command: Any
try:  # redis-py packs through hiredis too, after a slow pass over the arguments
    from hiredis import pack_command as _pack_command
except ImportError:  # pragma: no cover - hiredis is part of the [redis] extra
    _pack_command = None

SCRIPT = resources.files("bucketcore.backends").joinpath("lua/gcra.lua").read_bytes()
"""The decision script, read once from the package data."""
SCRIPT_SHA = hashlib.sha1(SCRIPT, usedforsecurity=False).hexdigest()
"""Its SHA1, the name EVALSHA calls it by."""


# The script's exactness bounds (see lua/gcra.lua): remainders below 2^52,
# debts below 2^50 microseconds.
_MAX_UNITS_PER_US = 2**52
_MAX_CAPACITY_US = 2**50
_MAX_REFUND_US = 2**51

_ACQUIRE, _TRY, _PEEK, _REFUND, _MANY = b"a", b"t", b"p", b"r", b"m"
_BATCH = 128  # calls per script run in acquire_many: a script blocks the server
_STREAM = 100  # calls per run when runs are streamed to one server

# One call inside a many-call run: (mode, bucket keys, their arguments, the
# same arguments already in the wire protocol).
_Call = tuple[bytes, list[bytes], Sequence[bytes], bytes]

_ON_ERROR = ("raise", "allow", "deny")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
_SSL_CERT_REQS = ("required", "optional", "none")
_DEFAULT_PREFIX = "bucketcore:"


# -- keys --------------------------------------------------------------------


def escape_key(key: Key) -> bytes:
    """The hash-tag content for a user key: no braces, never empty.

    ``%``, ``{`` and ``}`` become ``%25``, ``%7B`` and ``%7D``, so the tag
    holds no ``}`` (the first one after the tag's ``{`` ends it) and the
    mapping is one-to-one. The empty key becomes a lone ``%``, which no
    other key produces (every other ``%`` starts an escape), because Redis
    hashes the whole name when a tag is empty, which would split one key's
    limits over several cluster slots.

    >>> escape_key("user:{42}"), escape_key(b""), escape_key("100%")
    (b'user:%7B42%7D', b'%', b'100%25')
    """
    data = key if type(key) is bytes else key_bytes(key)
    if not data:
        return b"%"
    if b"%" in data or b"{" in data or b"}" in data:
        data = data.replace(b"%", b"%25").replace(b"{", b"%7B").replace(b"}", b"%7D")
    return data


def _resp(items: Sequence[bytes]) -> bytes:
    """Bulk strings in the Redis wire protocol (RESP), to splice into a command."""
    return b"".join([b"$%d\r\n%s\r\n" % (len(item), item) for item in items])


_EVALSHA_RESP = _resp([b"EVALSHA", SCRIPT_SHA.encode()])
_MANY_RESP = _resp([_MANY])
_ONE_BUCKET = {mode: _resp([mode, b"1"]) for mode in (_ACQUIRE, _PEEK)}


class _Plan:
    """What the script needs to know about one limit, computed once."""

    __slots__ = ("cap_args", "capacity", "costs", "limit", "packed", "suffix", "w", "w_arg")

    def __init__(self, limit: Limit) -> None:
        w = 1000 * limit.units_per_ns  # GCRA units per microsecond
        capacity = limit.capacity_units
        cap_us, cap_frac = divmod(capacity, w)
        if w > _MAX_UNITS_PER_US or cap_us > _MAX_CAPACITY_US:
            raise ConfigurationError(
                f"the Redis backend cannot decide {limit} exactly: its burst must refill "
                f"within 2^50 us (~35 years) and tokens / gcd(tokens, period_ns) must be "
                f"at most 2^52 / 1000"
            )
        self.limit = limit
        self.suffix = b"}" + limit.identity.encode("utf-8", "surrogatepass")
        self.w = w
        self.capacity = capacity
        self.w_arg = str(w).encode()
        self.cap_args = (str(cap_us).encode(), str(cap_frac).encode())
        self.costs: dict[int, tuple[bytes, ...]] = {}
        self.packed: dict[int, bytes] = {}  # the same, in the wire protocol

    def args(self, cost: int) -> tuple[bytes, ...]:
        """The five script arguments for taking ``cost`` tokens."""
        args = self.costs.get(cost)
        if args is None:
            # Beyond the capacity every cost is denied alike; clamping keeps
            # the script's sums under 2^53 (the client knows the real cost).
            amount = min(cost * self.limit.token_units, self.capacity + 1)
            amount_us, amount_frac = divmod(amount, self.w)
            args = (self.w_arg, str(amount_us).encode(), str(amount_frac).encode(), *self.cap_args)
            if len(self.costs) < 64:
                self.costs[cost] = args
                self.packed[cost] = _resp(args)
        return args

    def packed_args(self, cost: int) -> bytes:
        packed = self.packed.get(cost)
        return packed if packed is not None else _resp(self.args(cost))

    def refund_args(self, tokens: int) -> tuple[bytes, ...]:
        amount = min(tokens * self.limit.token_units, _MAX_REFUND_US * self.w)
        amount_us, amount_frac = divmod(amount, self.w)
        return (self.w_arg, str(amount_us).encode(), str(amount_frac).encode(), *self.cap_args)


# -- errors ------------------------------------------------------------------


def map_error(exc: BaseException) -> BucketError:
    """The bucketcore error for a redis-py (or socket) error; chain it ``from exc``.

    Unreachable, timed out, loading, failing over: ``StoreUnavailable``.
    Refused credentials or permissions, and anything else: ``StoreError``.
    A bucket that holds something else: ``CorruptState``.

    >>> type(map_error(redis.ConnectionError("refused"))).__name__
    'StoreUnavailable'
    """
    if isinstance(exc, AuthenticationError | AuthorizationError | NoPermissionError):
        return StoreError(f"Redis refused the credentials or the command: {exc}")
    if isinstance(
        exc,
        redis.ConnectionError
        | redis.TimeoutError
        | ClusterDownError
        | TryAgainError
        | AskError
        | ReadOnlyError
        | RedisClusterException
        | OSError,
    ):
        # AskError covers MOVED too: a slot that kept moving while resharding.
        return StoreUnavailable(f"Redis is unavailable: {exc}")
    if isinstance(exc, ResponseError):
        text = str(exc)
        if "BUCKETCORE corrupt" in text or text.startswith("WRONGTYPE"):
            return CorruptState(f"a bucket key holds something else: {exc}")
    return StoreError(f"Redis failed: {exc}")


_ERRORS = (RedisError, RedisClusterException, OSError)


# -- options -----------------------------------------------------------------


def _flag(name: str, value: object) -> bool:
    if type(value) is bool:
        return value
    if isinstance(value, str) and value.lower() in _TRUE | _FALSE:
        return value.lower() in _TRUE
    raise ConfigurationError(f"option {name} must be true or false, got {value!r}")


def _seconds(name: str, value: object) -> float:
    try:
        seconds = float(value) if type(value) in (int, float, str) else math.nan  # type: ignore[arg-type]
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds) or seconds <= 0:
        raise ConfigurationError(f"option {name} must be a number of seconds > 0, got {value!r}")
    return seconds


def _count(name: str, value: object, minimum: int) -> int:
    if type(value) is str and value.isdigit():
        value = int(value)
    if type(value) is not int or value < minimum:
        raise ConfigurationError(f"option {name} must be an int >= {minimum}, got {value!r}")
    return value


def _prefix(value: object) -> bytes:
    if type(value) is bytes:
        data = value
    elif type(value) is str:
        data = value.encode("utf-8")
    else:
        raise ConfigurationError(f"option prefix must be a str, got {value!r}")
    if b"{" in data or b"}" in data or len(data) > 256:
        raise ConfigurationError(
            f"option prefix must be at most 256 bytes with no '{{' or '}}', got {value!r}"
        )
    return data


class _Settings:
    """Options common to every way of opening a Redis store, validated."""

    def __init__(self, options: dict[str, object]) -> None:
        options = dict(options)
        self.prefix = _prefix(options.pop("prefix", _DEFAULT_PREFIX))
        on_error = options.pop("on_error", "raise")
        if on_error not in _ON_ERROR:
            raise ConfigurationError(
                f"option on_error must be one of {_ON_ERROR}, got {on_error!r}"
            )
        self.on_error = str(on_error)
        self.deny_cache = _flag("deny_cache", options.pop("deny_cache", True))
        self.deny_cache_size = _count("deny_cache_size", options.pop("deny_cache_size", 10_000), 1)
        self.rest = options


def _client_kwargs(scheme: str, options: dict[str, object]) -> dict[str, Any]:
    """redis-py keyword arguments for a client this store creates and owns."""
    options = dict(options)
    timeout = _seconds("timeout", options.pop("timeout", 1.0))
    kwargs: dict[str, Any] = {
        "socket_timeout": timeout,
        "socket_connect_timeout": _seconds(
            "connect_timeout", options.pop("connect_timeout", timeout)
        ),
    }
    retries = _count("connect_retries", options.pop("connect_retries", 1), 0)
    if "max_connections" in options:
        kwargs["max_connections"] = _count("max_connections", options.pop("max_connections"), 1)
    if "db" in options:
        if scheme.endswith("+cluster"):
            raise ConfigurationError("a Redis Cluster has only database 0: drop option db")
        kwargs["db"] = _count("db", options.pop("db"), 0)
    tls = scheme.startswith("rediss")
    for name in ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile"):
        if name in options:
            value = options.pop(name)
            if not tls or type(value) is not str:
                raise ConfigurationError(f"option {name} is a path, and only for rediss://")
            kwargs[name] = value
    if "ssl_cert_reqs" in options:
        reqs = options.pop("ssl_cert_reqs")
        if not tls or reqs not in _SSL_CERT_REQS:
            raise ConfigurationError(f"option ssl_cert_reqs is one of {_SSL_CERT_REQS}, rediss://")
        kwargs["ssl_cert_reqs"] = reqs
    if "ssl_check_hostname" in options:
        if not tls:
            raise ConfigurationError("option ssl_check_hostname is only for rediss://")
        kwargs["ssl_check_hostname"] = _flag(
            "ssl_check_hostname", options.pop("ssl_check_hostname")
        )
    if options:
        raise ConfigurationError(f"unknown option(s) for Redis: {', '.join(sorted(options))}")
    if not scheme.endswith("+cluster"):
        # Only connection set-up is ever retried: the decision command is sent
        # on a connection taken from the pool, outside redis-py's Retry.
        kwargs["retry"] = Retry(ExponentialBackoff(cap=0.1, base=0.01), retries)
    return kwargs


def _base_url(url: SplitResult) -> tuple[str, str]:
    scheme = url.scheme.lower()
    if scheme in ("redis", "rediss", "redis+cluster", "rediss+cluster") and not url.hostname:
        raise ConfigurationError(f"a Redis URL needs a host: {url.geturl()!r}")
    if scheme == "unix" and not url.path:
        raise ConfigurationError(f"a unix:// URL needs a socket path: {url.geturl()!r}")
    plain = scheme.removesuffix("+cluster")
    return scheme, urlunsplit((plain, url.netloc, url.path, "", ""))


# -- the logic shared by the sync and async stores -----------------------------


class _Base:
    """Building script calls and reading their replies; no I/O here."""

    def __init__(self, settings: _Settings, cluster: bool) -> None:
        self._prefix = settings.prefix
        self._on_error = settings.on_error
        self._deny_cache = settings.deny_cache
        self._deny_cache_size = settings.deny_cache_size
        self._cluster = cluster
        self._plans: dict[str, _Plan] = {}
        # escaped key -> identities -> (local ns before the call, debts)
        self._denied: dict[bytes, dict[tuple[str, ...], tuple[int, list[int]]]] = {}
        self._outage = False
        self._outage_since = 0
        self._outage_lock = threading.Lock()
        self._owned = False

    # building

    def _plan(self, limit: Limit) -> _Plan:
        plan = self._plans.get(limit.identity)
        if plan is None:
            plan = _Plan(limit)
            if len(self._plans) < 4096:
                self._plans[limit.identity] = plan
        elif plan.limit is not limit and plan.limit != limit:
            known = plan.limit
            if (known.tokens, known.period_ns, known.burst) != (
                limit.tokens,
                limit.period_ns,
                limit.burst,
            ):
                raise ConfigurationError(
                    f"limit name {limit.name!r} is used with two different rates: "
                    f"{known} and {limit}"
                )
        return plan

    def _parts(
        self, key: Key, limits: tuple[Limit, ...], cost: int
    ) -> tuple[bytes, list[_Plan], list[bytes], list[bytes]]:
        """The escaped key, the plans, the bucket keys and their script arguments."""
        tag = escape_key(key)
        base = self._prefix + b"{" + tag
        plans = [self._plan(limit) for limit in limits]
        keys = [base + plan.suffix for plan in plans]
        if len(plans) == 1:
            return tag, plans, keys, list(plans[0].args(cost))
        args: list[bytes] = []
        for plan in plans:
            args += plan.args(cost)
        return tag, plans, keys, args

    def _call_parts(self, key: Key, limits: tuple[Limit, ...], cost: int) -> tuple[Any, ...]:
        """``_parts`` plus the arguments packed for a many-call run."""
        tag, plans, keys, args = self._parts(key, limits, cost)
        if len(plans) == 1:
            packed = plans[0].packed_args(cost)
        else:
            packed = b"".join([plan.packed_args(cost) for plan in plans])
        return tag, plans, keys, args, packed

    def _command(
        self, key: Key, limits: tuple[Limit, ...], cost: int, mode: bytes
    ) -> tuple[bytes, list[_Plan], list[Any]]:
        tag, plans, keys, args = self._parts(key, limits, cost)
        return tag, plans, ["EVALSHA", SCRIPT_SHA, len(keys), *keys, mode, *args]

    def _batches(self, calls: list[_Call]) -> list[tuple[list[int], list[Any]]]:
        """Script runs for many calls: (indexes of the calls, the command) each.

        One run holds at most ``_BATCH`` calls (a script blocks the server
        while it runs); on a cluster, one run holds one slot's calls only.
        """
        groups: dict[int, list[int]] = {}
        if self._cluster:
            for index, call in enumerate(calls):
                groups.setdefault(key_slot(call[1][0]), []).append(index)
        else:
            groups[0] = list(range(len(calls)))
        runs: list[tuple[list[int], Any]] = []
        for indexes in groups.values():
            for start in range(0, len(indexes), _BATCH):
                chunk = indexes[start : start + _BATCH]
                if self._cluster:  # a list: RedisCluster may need to redirect it
                    run_keys: list[Any] = []
                    run_args: list[Any] = [_MANY]
                    for index in chunk:
                        mode, keys, args, _ = calls[index]
                        run_keys += keys
                        run_args += (mode, len(keys), *args)
                    command = ["EVALSHA", SCRIPT_SHA, len(run_keys), *run_keys, *run_args]
                    runs.append((chunk, command))
                else:  # packed here: most of each call's arguments were packed once
                    runs.append((chunk, self._packed_run([calls[index] for index in chunk])))
        return runs

    @staticmethod
    def _packed_run(calls: list[_Call]) -> bytes:
        """One many-call EVALSHA in the wire protocol."""
        key_parts: list[bytes] = []
        arg_parts = [_MANY_RESP]
        count = 4  # EVALSHA, sha, numkeys, "m"
        for mode, keys, args, packed in calls:
            if len(keys) == 1:
                key = keys[0]
                key_parts.append(b"$%d\r\n%s\r\n" % (len(key), key))
                arg_parts.append(_ONE_BUCKET[mode])
            else:
                key_parts += [b"$%d\r\n%s\r\n" % (len(key), key) for key in keys]
                arg_parts.append(_resp([mode, b"%d" % len(keys)]))
            arg_parts.append(packed)
            count += len(keys) + 2 + len(args)
        nkeys = b"%d" % len(key_parts)
        head = b"*%d\r\n" % count + _EVALSHA_RESP + _resp([nkeys])
        return b"".join([head, *key_parts, *arg_parts])

    @staticmethod
    def _split(reply: Any, chunk: list[int], calls: list[_Call]) -> list[list[int]]:
        """A many-call reply cut into one single-call reply per call."""
        if type(reply) is not list or not reply:
            raise CorruptState(f"unexpected reply from the bucketcore script: {reply!r}")
        now = reply[0]
        replies = []
        at = 1
        for index in chunk:
            end = at + 1 + 2 * len(calls[index][1])
            replies.append([now, *reply[at:end]])
            at = end
        if at != len(reply):
            raise CorruptState(f"unexpected reply from the bucketcore script: {reply!r}")
        return replies

    def _refund_command(self, key: Key, limits: tuple[Limit, ...], tokens: int) -> list[Any]:
        base = self._prefix + b"{" + escape_key(key)
        plans = [self._plan(limit) for limit in limits]
        command: list[Any] = ["EVALSHA", SCRIPT_SHA, len(plans)]
        command += [base + plan.suffix for plan in plans]
        command.append(_REFUND)
        for plan in plans:
            command += plan.refund_args(tokens)
        return command

    def _keys(self, key: Key, limits: tuple[Limit, ...]) -> list[bytes]:
        base = self._prefix + b"{" + escape_key(key)
        return [base + self._plan(limit).suffix for limit in limits]

    # reading

    @staticmethod
    def _steps(plans: list[_Plan], cost: int, reply: Any) -> list[Step]:
        if type(reply) is not list or len(reply) != 2 + 2 * len(plans):
            raise CorruptState(f"unexpected reply from the bucketcore script: {reply!r}")
        steps = [
            evaluate(plan.limit, reply[2 + 2 * i] * plan.w + reply[3 + 2 * i], 0, cost)
            for i, plan in enumerate(plans)
        ]
        if all(step.allowed for step in steps) != (reply[1] == 1):
            raise CorruptState(f"the bucketcore script and core disagree: {reply!r}")
        return steps

    def _decision(
        self,
        tag: bytes,
        limits: tuple[Limit, ...],
        plans: list[_Plan],
        cost: int,
        reply: Any,
        started: int,
    ) -> Decision:
        if len(plans) == 1 and type(reply) is list and len(reply) == 4:
            plan = plans[0]
            step = evaluate(plan.limit, reply[2] * plan.w + reply[3], 0, cost)
            if step.allowed != (reply[1] == 1):
                raise CorruptState(f"the bucketcore script and core disagree: {reply!r}")
            decision = from_nanoseconds(
                step.allowed, step.remaining, step.retry_ns, step.reset_ns, limits[0]
            )
        else:
            decision = decision_from_steps(limits, self._steps(plans, cost, reply))
        if not decision.allowed and self._deny_cache and started:
            self._remember_denial(tag, limits, plans, reply, started)
        return decision

    def _try_result(
        self,
        tag: bytes,
        limits: tuple[Limit, ...],
        plans: list[_Plan],
        cost: int,
        reply: Any,
        started: int,
    ) -> bool:
        if reply == 1:
            return True
        self._steps(plans, cost, reply)
        if reply[1] == 1:  # a try decided inside a many-call run answers in full
            return True
        if self._deny_cache:
            self._remember_denial(tag, limits, plans, reply, started)
        return False

    # acquire_many

    def _prepare_many(
        self,
        requests: Sequence[Request],
        now: int,
        start: int = 0,
        stop: int | None = None,
        results: list[Decision | None] | None = None,
    ) -> tuple[list[Decision | None], list[tuple[int, bytes, list[_Plan]]], list[_Call]]:
        """The calls for ``requests[start:stop]`` (those the deny cache cannot answer)."""
        if results is None:
            results = [None] * len(requests)
        pending: list[tuple[int, bytes, list[_Plan]]] = []
        calls: list[_Call] = []
        denied = self._denied
        known = self._plans
        head = self._prefix + b"{"
        for index in range(start, len(requests) if stop is None else min(stop, len(requests))):
            key, limits, cost = requests[index]
            if denied:
                cached = self._cached_denial(escape_key(key), limits, cost, now)
                if cached is not None:
                    results[index] = cached
                    continue
            plan = known.get(limits[0].identity) if len(limits) == 1 else None
            if plan is not None and plan.limit is limits[0] and cost in plan.packed:
                # The common case, inlined: one limit already planned, a usual cost.
                tag = escape_key(key)
                pending.append((index, tag, [plan]))
                calls.append(
                    (_ACQUIRE, [head + tag + plan.suffix], plan.costs[cost], plan.packed[cost])
                )
                continue
            tag, plans, keys, args, packed = self._call_parts(key, limits, cost)
            pending.append((index, tag, plans))
            calls.append((_ACQUIRE, keys, args, packed))
        return results, pending, calls

    def _spread(
        self, runs: list[tuple[list[int], list[Any]]], replies: list[Any], calls: list[_Call]
    ) -> list[Any]:
        """Each call's own reply (or the error of the run it was in)."""
        per_call: list[Any] = [None] * len(calls)
        for (chunk, _), reply in zip(runs, replies, strict=True):
            if isinstance(reply, BucketError):
                for index in chunk:
                    per_call[index] = reply
                continue
            for index, one in zip(chunk, self._split(reply, chunk, calls), strict=True):
                per_call[index] = one
        return per_call

    def _finish_run(
        self,
        requests: Sequence[Request],
        results: list[Decision | None],
        pending: list[tuple[int, bytes, list[_Plan]]],
        calls: list[_Call],
        reply: Any,
        now: int,
    ) -> None:
        """Decisions for the calls of one run, from its reply (or its error)."""
        if isinstance(reply, BucketError):
            self._finish_many(requests, results, pending, [reply] * len(calls), now)
            return
        if type(reply) is not list or len(reply) != 1 + sum(1 + 2 * len(c[1]) for c in calls):
            raise CorruptState(f"unexpected reply from the bucketcore script: {reply!r}")
        at = 1
        for index, tag, plans in pending:
            _, limits, cost = requests[index]
            if len(plans) == 1:  # the common case, without a reply of its own
                plan = plans[0]
                step = evaluate(plan.limit, reply[at + 1] * plan.w + reply[at + 2], 0, cost)
                if step.allowed != (reply[at] == 1):
                    raise CorruptState(f"the bucketcore script and core disagree: {reply!r}")
                if step.allowed or not self._deny_cache:
                    results[index] = from_nanoseconds(
                        step.allowed, step.remaining, step.retry_ns, step.reset_ns, limits[0]
                    )
                    at += 3
                    continue
            end = at + 1 + 2 * len(plans)
            one = [reply[0], *reply[at:end]]
            results[index] = self._decision(tag, limits, plans, cost, one, now)
            at = end
        if self._outage:
            self._recovered(now)

    def _finish_many(
        self,
        requests: Sequence[Request],
        results: list[Decision | None],
        pending: list[tuple[int, bytes, list[_Plan]]],
        replies: list[Any],
        now: int,
    ) -> None:
        failed = False
        for (index, tag, plans), reply in zip(pending, replies, strict=True):
            _, limits, cost = requests[index]
            if isinstance(reply, StoreUnavailable):
                failed = True
                results[index] = self._degraded(limits, cost, reply)
            elif isinstance(reply, BucketError):
                raise reply
            else:
                results[index] = self._decision(tag, limits, plans, cost, reply, now)
        if self._outage and not failed:
            self._recovered(now)

    # the deny cache

    def _remember_denial(
        self,
        tag: bytes,
        limits: tuple[Limit, ...],
        plans: list[_Plan],
        reply: list[int],
        started: int,
    ) -> None:
        debts = [reply[2 + 2 * i] * plan.w + reply[3 + 2 * i] for i, plan in enumerate(plans)]
        denied = self._denied
        if len(denied) >= self._deny_cache_size:
            denied.clear()  # a cache: forgetting only costs round trips
        denied.setdefault(tag, {})[tuple(limit.identity for limit in limits)] = (started, debts)

    def _cached_denial(
        self, tag: bytes, limits: tuple[Limit, ...], cost: int, now_ns: int
    ) -> Decision | None:
        """The denial to answer locally, or None to ask Redis.

        The debts were measured by the server after ``started`` (taken before
        the call was sent), so counting elapsed time from ``started`` never
        holds a bucket back longer than Redis would.
        """
        by_key = self._denied.get(tag)
        if not by_key:
            return None
        ids = tuple(limit.identity for limit in limits)
        entry = by_key.get(ids)
        if entry is None:
            return None
        started, debts = entry
        elapsed = now_ns - started
        steps = [
            evaluate(limit, debt, elapsed, cost) for limit, debt in zip(limits, debts, strict=True)
        ]
        if all(step.allowed for step in steps):
            by_key.pop(ids, None)
            return None
        return decision_from_steps(limits, steps)

    def _forget_denials(self, tag: bytes) -> None:
        self._denied.pop(tag, None)

    # the failure policy

    def _degraded(self, limits: tuple[Limit, ...], cost: int, exc: StoreUnavailable) -> Decision:
        if self._on_error == "raise":
            raise exc
        if not self._outage:
            with self._outage_lock:
                if not self._outage:
                    self._outage = True
                    self._outage_since = time.monotonic_ns()
                    _LOG.warning(
                        "Redis is unavailable (%s): on_error=%s decides until it is back",
                        exc,
                        self._on_error,
                    )
        limit = limits[0]
        if self._on_error == "allow":
            return make_decision(True, 0, 0.0, 0.0, limit, degraded=True)
        # Fail closed: say how long the slowest limit would need for the cost.
        waits = [
            NEVER
            if cost * lim.token_units > lim.capacity_units
            else -(-cost * lim.token_units // lim.units_per_ns)
            for lim in limits
        ]
        index = max(range(len(limits)), key=lambda i: (waits[i] == NEVER, waits[i]))
        limit = limits[index]
        full_ns = -(-limit.capacity_units // limit.units_per_ns)
        decision = from_nanoseconds(False, 0, waits[index], full_ns, limit)
        return make_decision(
            False, 0, decision.retry_after, decision.reset_after, limit, degraded=True
        )

    def _recovered(self, started: int) -> None:
        """A call that began at ``started`` (monotonic ns) succeeded.

        Only a call begun after the outage was noticed ends it: one that was
        already in flight may still answer, and must not make it log twice.
        """
        with self._outage_lock:
            if self._outage and started > self._outage_since:
                self._outage = False
                _LOG.warning("Redis is reachable again: decisions are exact again")


def _is_redirect(exc: BaseException) -> bool:
    return isinstance(exc, AskError | TryAgainError)


# -- the synchronous store -----------------------------------------------------


class RedisStore(_Base):
    """A ``Store`` over Redis or Redis Cluster; thread-safe.

    Give a URL's parts through ``open_store`` (``Limiter("redis://...")``)
    or your own client: ``redis.Redis`` or ``redis.cluster.RedisCluster``.
    The decision command is sent on a connection of the client's pool, past
    the client's ``Retry``, which then only guards connection set-up.

    >>> import redis  # doctest: +SKIP
    >>> limiter = Limiter(RedisStore(client=redis.Redis(), prefix="app:"))  # doctest: +SKIP
    """

    def __init__(self, client: Any, **options: object) -> None:
        if isinstance(client, redis.asyncio.Redis | redis.asyncio.cluster.RedisCluster):
            raise ConfigurationError(
                "an asyncio client needs AsyncRedisStore (for AsyncLimiter), not RedisStore"
            )
        cluster = isinstance(client, redis.cluster.RedisCluster)
        if not cluster and not isinstance(client, redis.Redis):
            raise ConfigurationError(f"client must be a redis-py client, got {client!r}")
        settings = _Settings(options)
        if settings.rest:
            raise ConfigurationError(
                f"unknown option(s) for RedisStore: {', '.join(sorted(settings.rest))} "
                "(connection options belong to your client)"
            )
        super().__init__(settings, cluster)
        self.client = client
        self._closed = False
        # Connections this store took from the client's pool and keeps: the
        # pool's own bookkeeping costs about as much as the round trip.
        self._idle: list[Any] = []
        _STORES.add(self)

    # the Store contract

    def acquire(self, key: Key, limits: tuple[Limit, ...], cost: int) -> Decision:
        now = time.monotonic_ns()
        if self._denied:
            tag = escape_key(key)
            cached = self._cached_denial(tag, limits, cost, now)
            if cached is not None:
                return cached
        tag, plans, command = self._command(key, limits, cost, _ACQUIRE)
        try:
            reply = self._call(command)
        except StoreUnavailable as exc:
            return self._degraded(limits, cost, exc)
        if self._outage:
            self._recovered(now)
        return self._decision(tag, limits, plans, cost, reply, now)

    def try_acquire(self, key: Key, limits: tuple[Limit, ...], cost: int) -> bool:
        now = time.monotonic_ns()
        if self._denied:
            tag = escape_key(key)
            if self._cached_denial(tag, limits, cost, now) is not None:
                return False
        tag, plans, command = self._command(key, limits, cost, _TRY)
        try:
            reply = self._call(command)
        except StoreUnavailable as exc:
            return self._degraded(limits, cost, exc).allowed
        if self._outage:
            self._recovered(now)
        return self._try_result(tag, limits, plans, cost, reply, now)

    def peek(self, key: Key, limits: tuple[Limit, ...], cost: int) -> Decision:
        now = time.monotonic_ns()
        tag, plans, command = self._command(key, limits, cost, _PEEK)
        try:
            reply = self._call(command)
        except StoreUnavailable as exc:
            return self._degraded(limits, cost, exc)
        if self._outage:
            self._recovered(now)
        return self._decision(tag, limits, plans, cost, reply, 0)

    def acquire_many(self, requests: Sequence[Request]) -> list[Decision]:
        if not self._cluster:
            return self._stream_many(requests)
        now = time.monotonic_ns()
        results, pending, calls = self._prepare_many(requests, now)
        if calls:
            runs = self._batches(calls)
            replies = self._call_many([command for _, command in runs])
            self._finish_many(requests, results, pending, self._spread(runs, replies, calls), now)
        return results  # type: ignore[return-value]

    def refund(self, key: Key, limits: tuple[Limit, ...], tokens: int) -> None:
        self._forget_denials(escape_key(key))
        self._call(self._refund_command(key, limits, tokens))

    def reset(self, key: Key, limits: tuple[Limit, ...]) -> None:
        self._forget_denials(escape_key(key))
        try:
            self.client.delete(*self._keys(key, limits))
        except _ERRORS as exc:
            raise map_error(exc) from exc

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        idle, self._idle = self._idle, []
        if not self._cluster:
            for conn in idle:
                self.client.connection_pool.release(conn)
        if self._owned:
            self.client.close()

    # I/O

    def _take(self) -> Any:
        """A connection of this store's own, connected and with nothing unread."""
        try:
            conn = self._idle.pop()
        except IndexError:  # none idle (or another thread took the last one)
            return self.client.connection_pool.get_connection()
        try:
            _freshen(conn)
        except BaseException:
            self._idle.append(conn)
            raise
        return conn

    def _call(self, command: list[Any]) -> Any:
        """Run one script call once; NOSCRIPT loads it and runs it once more."""
        if self._cluster:
            try:
                return self._call_cluster(command)
            except _ERRORS as exc:
                raise map_error(exc) from exc
        try:
            conn = self._take()
        except _ERRORS as exc:
            raise map_error(exc) from exc
        try:
            conn.send_packed_command([_packed(conn, command)])
            try:
                return conn.read_response()
            except NoScriptError:
                # The script did not run: nothing was charged.
                conn.send_packed_command([_packed(conn, ["EVAL", SCRIPT, *command[2:]])])
                return conn.read_response()
        except _ERRORS as exc:
            raise map_error(exc) from exc
        finally:
            self._idle.append(conn)

    def _stream_many(self, requests: Sequence[Request]) -> list[Decision]:
        """acquire_many on one server: runs go out as soon as each is packed.

        Still one round trip of waiting, but the server decides the first
        runs while later ones are packed here, and the first replies are
        turned into Decisions while the server works on the rest.
        """
        now = time.monotonic_ns()
        results: list[Decision | None] = [None] * len(requests)
        sent: list[tuple[list[tuple[int, bytes, list[_Plan]]], list[_Call], bytes]] = []
        replies: list[Any] = []
        failure: BucketError | None = None
        prepared = 0  # requests[:prepared] are in sent (or answered by the deny cache)
        try:
            conn = self._take()
        except _ERRORS as exc:
            conn, failure = None, _chained(exc)
        if conn is not None:
            try:
                while prepared < len(requests):
                    _, pending, calls = self._prepare_many(
                        requests, now, prepared, prepared + _STREAM, results
                    )
                    prepared += _STREAM
                    if calls:
                        packed = self._packed_run(calls)
                        sent.append((pending, calls, packed))
                        conn.send_packed_command([packed])
                missing = []
                for index, (pending, calls, _) in enumerate(sent):
                    try:
                        reply = conn.read_response()
                    except NoScriptError:
                        missing.append(index)
                        reply = None
                    except ResponseError as exc:
                        reply = _chained(exc)
                    replies.append(reply)
                    if reply is not None:
                        self._finish_run(requests, results, pending, calls, reply, now)
                if missing:  # those runs did not run: load the script, send them again
                    again = self._send_all(
                        conn, [["SCRIPT", "LOAD", SCRIPT]] + [sent[index][2] for index in missing]
                    )
                    for index, reply in zip(missing, again[1:], strict=True):
                        pending, calls, _ = sent[index]
                        if isinstance(reply, BaseException):
                            reply = _chained(reply)
                        replies[index] = reply
                        self._finish_run(requests, results, pending, calls, reply, now)
            except _ERRORS as exc:
                failure = _chained(exc)
            finally:
                if len(replies) < len(sent):
                    conn.disconnect()  # replies still on the way would answer the next caller
                self._idle.append(conn)
        if failure is not None:  # every call without a reply failed with it
            if prepared < len(requests):
                _, pending, calls = self._prepare_many(requests, now, prepared, results=results)
                sent.append((pending, calls, b""))
            for index, (pending, calls, _) in enumerate(sent):
                if index >= len(replies) or replies[index] is None:
                    self._finish_run(requests, results, pending, calls, failure, now)
        return results  # type: ignore[return-value]

    def _call_cluster(self, command: list[Any]) -> Any:
        # Naming the node turns off RedisCluster's retry of the whole command
        # (it still follows MOVED and ASK, which mean the script did not run).
        client = self.client
        node = client.get_node_from_key(command[3])
        try:
            return client.execute_command(*command, target_nodes=node)
        except NoScriptError:
            return client.execute_command("EVAL", SCRIPT, *command[2:], target_nodes=node)

    def _call_many(self, commands: list[list[Any]]) -> list[Any]:
        """One pipeline per server; each reply, or the error for that command."""
        if not self._cluster:
            return self._pipeline(None, commands)
        client = self.client
        groups: dict[str, list[int]] = {}
        nodes: dict[str, Any] = {}
        replies: list[Any] = [None] * len(commands)
        for index, command in enumerate(commands):
            try:
                node = client.get_node_from_key(command[3])
            except _ERRORS as exc:
                replies[index] = _chained(exc)
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
            if isinstance(reply, BucketError) and _is_redirect(reply.__cause__ or reply):
                # MOVED, ASK, TRYAGAIN: the script did not run there; follow it.
                try:
                    replies[index] = self._call(commands[index])
                except BucketError as exc:
                    replies[index] = exc
        return replies

    def _pipeline(self, pool: Any, commands: list[list[Any]]) -> list[Any]:
        """Send ``commands`` at once on one connection (the store's own if no pool)."""
        conn = None
        try:
            if pool is not None:
                conn = pool.get_connection()
            else:
                try:
                    conn = self._idle.pop()
                    _freshen(conn)
                except IndexError:
                    conn = self.client.connection_pool.get_connection()
        except _ERRORS as exc:
            if conn is not None:
                self._idle.append(conn)
            error = _chained(exc)
            return [error] * len(commands)
        try:
            replies = self._send_all(conn, commands)
            missing = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
            if missing:
                again = self._send_all(
                    conn, [["SCRIPT", "LOAD", SCRIPT]] + [commands[i] for i in missing]
                )
                for i, reply in zip(missing, again[1:], strict=True):
                    replies[i] = reply
            return [_chained(r) if isinstance(r, BaseException) else r for r in replies]
        except _ERRORS as exc:
            error = _chained(exc)
            return [error] * len(commands)
        finally:
            if pool is not None:
                pool.release(conn)
            else:
                self._idle.append(conn)

    @staticmethod
    def _send_all(conn: Any, commands: list[Any]) -> list[Any]:
        conn.send_packed_command([b"".join([_packed(conn, command) for command in commands])])
        replies: list[Any] = []
        for _ in commands:
            try:
                replies.append(conn.read_response())
            except ResponseError as exc:  # one command's error; the rest still follow
                replies.append(exc)
        return replies


def _packed(conn: Any, command: Any) -> bytes:
    """A command in the wire protocol: packed already (bytes) or packed now."""
    if type(command) is bytes:
        return command
    if _pack_command is not None:
        packed: bytes = _pack_command(tuple(command))
        return packed
    return b"".join(conn.pack_command(*command))


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


_STORES: weakref.WeakSet[RedisStore] = weakref.WeakSet()


def _forget_connections_after_fork() -> None:
    # A child must not share its parent's sockets: let the pool, which checks
    # the pid itself, make new ones.
    for store in list(_STORES):
        store._idle = []


os.register_at_fork(after_in_child=_forget_connections_after_fork)


def _chained(exc: BaseException) -> BucketError:
    error = map_error(exc)
    error.__cause__ = exc
    return error


# -- the asyncio store ---------------------------------------------------------


class AsyncRedisStore(_Base):
    """An ``AsyncStore`` over ``redis.asyncio`` (``Redis`` or ``RedisCluster``).

    >>> import redis.asyncio  # doctest: +SKIP
    >>> limiter = AsyncLimiter(AsyncRedisStore(client=redis.asyncio.Redis()))  # doctest: +SKIP
    """

    def __init__(self, client: Any, **options: object) -> None:
        cluster = isinstance(client, redis.asyncio.cluster.RedisCluster)
        if not cluster and not isinstance(client, redis.asyncio.Redis):
            raise ConfigurationError(
                f"client must be a redis.asyncio client (sync ones: RedisStore), got {client!r}"
            )
        settings = _Settings(options)
        if settings.rest:
            raise ConfigurationError(
                f"unknown option(s) for AsyncRedisStore: {', '.join(sorted(settings.rest))} "
                "(connection options belong to your client)"
            )
        super().__init__(settings, cluster)
        self.client = client
        self._closed = False
        self._ready = False
        self._queue: list[tuple[_Call, asyncio.Future[Any]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def acquire(self, key: Key, limits: tuple[Limit, ...], cost: int) -> Decision:
        now = time.monotonic_ns()
        if self._denied:
            cached = self._cached_denial(escape_key(key), limits, cost, now)
            if cached is not None:
                return cached
        tag, plans, keys, args, packed = self._call_parts(key, limits, cost)
        try:
            reply = await self._decide(_ACQUIRE, keys, args, packed)
        except StoreUnavailable as exc:
            return self._degraded(limits, cost, exc)
        if self._outage:
            self._recovered(now)
        return self._decision(tag, limits, plans, cost, reply, now)

    async def try_acquire(self, key: Key, limits: tuple[Limit, ...], cost: int) -> bool:
        now = time.monotonic_ns()
        if self._denied and self._cached_denial(escape_key(key), limits, cost, now) is not None:
            return False
        tag, plans, keys, args, packed = self._call_parts(key, limits, cost)
        try:
            reply = await self._decide(_TRY, keys, args, packed)
        except StoreUnavailable as exc:
            return self._degraded(limits, cost, exc).allowed
        if self._outage:
            self._recovered(now)
        return self._try_result(tag, limits, plans, cost, reply, now)

    async def peek(self, key: Key, limits: tuple[Limit, ...], cost: int) -> Decision:
        now = time.monotonic_ns()
        tag, plans, keys, args, packed = self._call_parts(key, limits, cost)
        try:
            reply = await self._decide(_PEEK, keys, args, packed)
        except StoreUnavailable as exc:
            return self._degraded(limits, cost, exc)
        if self._outage:
            self._recovered(now)
        return self._decision(tag, limits, plans, cost, reply, 0)

    async def _decide(
        self, mode: bytes, keys: list[bytes], args: list[bytes], packed: bytes
    ) -> Any:
        """One call's reply; concurrent calls share script runs (see ``_flush``)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        # A try inside a many-call run answers in full; _try_result reads both.
        self._queue.append(((_ACQUIRE if mode == _TRY else mode, keys, args, packed), future))
        flusher = self._flusher
        if flusher is None or flusher.done() or flusher.get_loop() is not loop:
            self._flusher = loop.create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        """Decide every queued call in as few script runs as possible.

        The calls that arrive while a run is in flight wait for the next one,
        so N concurrent tasks cost about one round trip per N decisions, not
        N round trips. Each call is still decided exactly once, on its own.
        On a cluster the runs are per slot, all in flight at once.
        """
        queue: list[tuple[_Call, asyncio.Future[Any]]] = []
        try:
            while self._queue:
                queue, self._queue = self._queue, []
                calls = [call for call, _ in queue]
                runs = self._batches(calls)
                replies = await self._call_many([command for _, command in runs])
                for (_, future), reply in zip(
                    queue, self._spread(runs, replies, calls), strict=True
                ):
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

    async def acquire_many(self, requests: Sequence[Request]) -> list[Decision]:
        now = time.monotonic_ns()
        results, pending, calls = self._prepare_many(requests, now)
        if calls:
            runs = self._batches(calls)
            replies = await self._call_many([command for _, command in runs])
            self._finish_many(requests, results, pending, self._spread(runs, replies, calls), now)
        return results  # type: ignore[return-value]

    async def refund(self, key: Key, limits: tuple[Limit, ...], tokens: int) -> None:
        self._forget_denials(escape_key(key))
        await self._call(self._refund_command(key, limits, tokens))

    async def reset(self, key: Key, limits: tuple[Limit, ...]) -> None:
        self._forget_denials(escape_key(key))
        try:
            await self.client.delete(*self._keys(key, limits))
        except _ERRORS as exc:
            raise map_error(exc) from exc

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._owned:
            await self.client.aclose()

    async def _call(self, command: list[Any]) -> Any:
        try:
            if self._cluster:
                client = self.client
                if not self._ready:
                    await client.initialize()  # the asyncio cluster learns its slots lazily
                    self._ready = True
                node = client.get_node_from_key(command[3])
                try:
                    return await client.execute_command(*command, target_nodes=node)
                except NoScriptError:
                    return await client.execute_command(
                        "EVAL", SCRIPT, *command[2:], target_nodes=node
                    )
            pool = self.client.connection_pool
            conn = await pool.get_connection()
            try:
                await conn.send_command(*command)
                try:
                    return await conn.read_response()
                except NoScriptError:
                    await conn.send_command("EVAL", SCRIPT, *command[2:])
                    return await conn.read_response()
            finally:
                await pool.release(conn)
        except _ERRORS as exc:
            raise map_error(exc) from exc

    async def _call_many(self, commands: list[list[Any]]) -> list[Any]:
        if self._cluster:
            # One call per request, all in flight at once.
            async def one(command: list[Any]) -> Any:
                try:
                    return await self._call(command)
                except BucketError as exc:
                    return exc

            return list(await asyncio.gather(*(one(command) for command in commands)))
        pool = self.client.connection_pool
        try:
            conn = await pool.get_connection()
        except _ERRORS as exc:
            return [_chained(exc)] * len(commands)
        try:
            replies = await self._send_all(conn, commands)
            missing = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
            if missing:
                again = await self._send_all(
                    conn, [["SCRIPT", "LOAD", SCRIPT]] + [commands[i] for i in missing]
                )
                for i, reply in zip(missing, again[1:], strict=True):
                    replies[i] = reply
            return [_chained(r) if isinstance(r, BaseException) else r for r in replies]
        except _ERRORS as exc:
            return [_chained(exc)] * len(commands)
        finally:
            await pool.release(conn)

    @staticmethod
    async def _send_all(conn: Any, commands: list[Any]) -> list[Any]:
        packed = [b"".join([_packed(conn, command) for command in commands])]
        await conn.send_packed_command(packed)
        replies: list[Any] = []
        for _ in commands:
            try:
                replies.append(await conn.read_response())
            except ResponseError as exc:
                replies.append(exc)
        return replies


# -- opening from a URL --------------------------------------------------------


def _refuse_clock(clock: Clock | None) -> None:
    if clock is not None:
        raise ConfigurationError(
            "Redis decides with the server's clock (TIME): a clock cannot be given"
        )


def _read_url(
    url: SplitResult, options: dict[str, object], clock: Clock | None
) -> tuple[str, str, dict[str, Any], dict[str, Any]]:
    """What both openers need: the scheme, the client URL, client and store options."""
    _refuse_clock(clock)
    scheme, base = _base_url(url)
    settings = _Settings(split_options(url, options))
    store_options = {
        "prefix": settings.prefix,
        "on_error": settings.on_error,
        "deny_cache": settings.deny_cache,
        "deny_cache_size": settings.deny_cache_size,
    }
    return scheme, base, _client_kwargs(scheme, settings.rest), store_options


def open_store(url: SplitResult, options: dict[str, object], clock: Clock | None) -> RedisStore:
    """``redis://``, ``rediss://``, ``unix://``, ``redis+cluster://``, ``rediss+cluster://``.

    >>> from urllib.parse import urlsplit
    >>> open_store(urlsplit("redis://localhost/0?on_error=maybe"), {}, None)
    Traceback (most recent call last):
    ...
    bucketcore.errors.ConfigurationError: option on_error must be one of ...
    """
    scheme, base, kwargs, store_options = _read_url(url, options, clock)
    try:
        if scheme.endswith("+cluster"):
            client: Any = redis.cluster.RedisCluster.from_url(base, **kwargs)
        else:
            client = redis.Redis.from_url(base, **kwargs)
    except _ERRORS as exc:
        raise map_error(exc) from exc
    except ValueError as exc:
        raise ConfigurationError(f"bad Redis URL {url.geturl()!r}: {exc}") from exc
    store = RedisStore(client, **store_options)
    store._owned = True
    return store


def open_async_store(
    url: SplitResult, options: dict[str, object], clock: Clock | None
) -> AsyncRedisStore:
    """The ``redis.asyncio`` twin of ``open_store`` (clients connect lazily)."""
    scheme, base, kwargs, store_options = _read_url(url, options, clock)
    try:
        if scheme.endswith("+cluster"):
            client: Any = redis.asyncio.cluster.RedisCluster.from_url(base, **kwargs)
        else:
            client = redis.asyncio.Redis.from_url(base, **kwargs)
    except ValueError as exc:
        raise ConfigurationError(f"bad Redis URL {url.geturl()!r}: {exc}") from exc
    store = AsyncRedisStore(client, **store_options)
    store._owned = True
    return store
