"""The Redis backend against real servers: exact script math, keys, options, errors.

The contract suite (tests/test_contract.py) also runs here on Redis, a
3-master cluster and Valkey; this file checks what only Redis has.
"""

from __future__ import annotations

import asyncio
import gc
import inspect
import logging
import math
import struct
import time
from typing import Any

import pytest
import redis
import redis.asyncio
import redis.asyncio.cluster
import redis.cluster
import redis.exceptions
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.crc import key_slot

from bucketcore import AsyncLimiter, Limit, Limiter
from bucketcore._gcra import decision_from_steps, evaluate, refunded
from bucketcore.backends.redis import (
    SCRIPT_SHA,
    AsyncRedisStore,
    RedisStore,
    escape_key,
    map_error,
)
from bucketcore.backends.redis.calls import Decide
from bucketcore.errors import (
    ConfigurationError,
    CorruptState,
    StoreError,
    StoreUnavailable,
)
from support.servers import RedisCluster3, RedisProcess
from tests.strategies import limits

pytestmark = pytest.mark.redis


@pytest.fixture
def limiter(redis_server: RedisProcess, redis_prefix: str) -> Any:
    made = Limiter(redis_server.url, prefix=redis_prefix, deny_cache=False)
    yield made
    made.close()


@pytest.fixture
def store(limiter: Limiter) -> RedisStore:
    assert isinstance(limiter.store, RedisStore)
    return limiter.store


# -- the script against bucketcore._gcra, the reference -----------------------


_OPS = st.lists(
    st.tuples(
        st.sampled_from(["acquire", "acquire", "acquire", "peek", "refund", "reset"]),
        st.one_of(st.integers(1, 3), st.integers(1, 10**13)),
    ),
    min_size=1,
    max_size=12,
)


def _raw(store: RedisStore, key: str, limits: tuple[Limit, ...], cost: int, mode: bytes) -> Any:
    call = Decide(store.calls, mode, key, limits, cost)
    return call.plans, store._send_one(call.command)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(chosen=st.lists(limits(), min_size=1, max_size=3, unique_by=lambda x: x.identity), ops=_OPS)
def test_the_script_decides_exactly_like_the_reference(
    store: RedisStore, chosen: list[Limit], ops: list[tuple[str, int]]
) -> None:
    """Every reply agrees with _gcra at the server's own instant, to the unit."""
    key = f"ref:{id(chosen)}:{len(ops)}"
    limits = tuple(chosen)
    store.reset(key, limits)
    tats: list[int | None] = [None] * len(limits)
    for op, cost in ops:
        if op == "reset":
            store.reset(key, limits)
            tats = [None] * len(limits)
            continue
        if op == "refund":
            command = store.calls.refund(key, limits, cost).command
            now_ns = store._send_one(command) * 1000
            tats = [refunded(lim, tat, now_ns, cost) for lim, tat in zip(limits, tats, strict=True)]
            continue
        plans, reply = _raw(store, key, limits, cost, b"a" if op == "acquire" else b"p")
        now_ns = reply[0] * 1000
        expected = [evaluate(lim, tat, now_ns, cost) for lim, tat in zip(limits, tats, strict=True)]
        debts = [reply[2 + 2 * i] * plan.w + reply[3 + 2 * i] for i, plan in enumerate(plans)]
        for lim, tat, debt in zip(limits, tats, debts, strict=True):
            assert debt == (0 if tat is None else max(tat - now_ns * lim.units_per_ns, 0))
        assert (reply[1] == 1) == all(step.allowed for step in expected)
        assert store.calls.decision(b"", limits, plans, cost, reply, 0) == decision_from_steps(
            limits, expected
        )
        if op == "acquire" and reply[1] == 1:
            tats = [step.tat for step in expected]


@pytest.mark.slow
@settings(
    max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(chosen=st.lists(limits(), min_size=1, max_size=3, unique_by=lambda x: x.identity), ops=_OPS)
def test_the_script_decides_exactly_like_the_reference_at_length(
    store: RedisStore, chosen: list[Limit], ops: list[tuple[str, int]]
) -> None:
    test_the_script_decides_exactly_like_the_reference.hypothesis.inner_test(store, chosen, ops)  # type: ignore[attr-defined]


def test_try_acquire_answers_what_acquire_would(store: RedisStore) -> None:
    limits = (Limit(5, 3600.0), Limit(3, 86400.0, name="day"))
    tried = [store.try_acquire("t", limits, cost) for cost in (1, 2, 1, 1)]
    assert tried == [True, True, False, False]
    assert [store.acquire("a", limits, cost).allowed for cost in (1, 2, 1, 1)] == tried
    assert store.peek("t", limits, 1).remaining == 0


def test_fractions_of_a_token_carry_over_between_calls(store: RedisStore) -> None:
    """7 tokens per 3 s: the emission interval is not a whole number of microseconds."""
    limit = Limit(7, 3.0, burst=1)
    plans, first = _raw(store, "frac", (limit,), 1, b"a")
    assert first[1] == 1
    plans, second = _raw(store, "frac", (limit,), 1, b"p")
    w = plans[0].w
    debt = second[2] * w + second[3]
    now_units = (second[0] - first[0]) * w
    assert debt == limit.token_units - now_units  # not rounded to a microsecond
    assert debt % w != 0 or now_units % w == 0


def test_a_clock_that_stepped_back_counts_the_bucket_as_empty(store: RedisStore) -> None:
    limit = Limit(10, 60.0)
    key_name = store.calls.keys("back", (limit,))[0]
    seconds, micros = store.client.time()
    ahead_us = seconds * 1_000_000 + micros + 10 * 3600 * 1_000_000  # ten hours ahead
    store.client.set(key_name, struct.pack("<dd", ahead_us, 0), px=3_600_000)
    decision = store.acquire("back", (limit,), 1)
    assert not decision
    assert decision.remaining == 0
    assert 59 < decision.reset_after <= 60 + 1e-6  # empty, not "ten hours in debt"
    assert 5 < decision.retry_after <= 6 + 1e-6


def test_idle_buckets_expire_when_they_would_be_full(store: RedisStore) -> None:
    limit = Limit(2, 10.0)
    store.acquire("ttl", (limit,), 2)
    ttl = store.client.pttl(store.calls.keys("ttl", (limit,))[0])
    assert 9_000 <= ttl <= 10_002  # time until full, rounded up, plus 2 ms


def test_the_contract_extremes_are_decided_exactly(store: RedisStore) -> None:
    # Limits beyond what the script decides exactly (a burst refilling over
    # 2**50 us) cannot be made at all (docs/design.md §3); the extremes fit.
    with pytest.raises(ConfigurationError, match="year"):
        Limit(1, 1e9 * 3600, burst=10**6)
    fine = Limit(10**7, 1.0, burst=10**12)
    assert store.acquire("k", (fine,), 10**11).remaining == 9 * 10**11


def test_a_bucket_key_holding_something_else_is_corrupt_state(store: RedisStore) -> None:
    limit = Limit(1, 60.0)
    store.client.set(store.calls.keys("bad", (limit,))[0], b"not a bucket")
    with pytest.raises(CorruptState):
        store.acquire("bad", (limit,), 1)
    store.client.delete(store.calls.keys("bad", (limit,))[0])
    store.client.hset(store.calls.keys("bad", (limit,))[0], "a", "b")
    with pytest.raises(CorruptState):
        store.acquire("bad", (limit,), 1)


def test_a_changed_plan_is_converted_once_then_decided_in_one_round_trip(
    store: RedisStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    basic, pro = Limit(5, 3600.0, name="api"), Limit(50, 3600.0, name="api")
    assert store.acquire("k", (basic,), 3).remaining == 2
    sent = _count_round_trips(store, monkeypatch)
    assert store.acquire("k", (pro,), 1).remaining == 1  # the 2 held carried over
    assert sent[0] == 2  # the call, then the conversion and the call again in one write
    assert store.acquire("k", (pro,), 1).remaining == 0
    assert sent[0] == 3
    assert not store.acquire("k", (basic,), 1)  # back to basic: converted again, empty


def test_a_clock_step_back_is_stored_clamped_so_the_reported_wait_comes_true(
    store: RedisStore,
) -> None:
    limit = Limit(10, 1.0)  # a token per 100 ms
    key_name = store.calls.keys("stepped", (limit,))[0]
    seconds, micros = store.client.time()
    ahead_us = seconds * 1_000_000 + micros + 10 * 3600 * 1_000_000  # written ten hours ahead
    store.client.set(key_name, struct.pack("<dd", ahead_us, 0), px=3_600_000)
    denied = store.acquire("stepped", (limit,), 1)
    assert not denied
    assert 0.09 < denied.retry_after <= 0.1 + 1e-6
    stored_us = struct.unpack_from("<d", store.client.get(key_name))[0]
    assert stored_us < ahead_us - 3600 * 1_000_000  # stored as an empty bucket
    time.sleep(denied.retry_after)  # the server's clock is the point here
    assert store.acquire("stepped", (limit,), 1)


def test_a_plan_changed_during_a_hold_keeps_its_deadline(store: RedisStore) -> None:
    basic, pro = Limit(5, 1.0, name="api"), Limit(50, 1.0, name="api")
    store.drain("held", (basic,), 30 * 10**9)
    retry = store.acquire("held", (pro,), 1).retry_after  # converted by the client
    assert 29 < retry <= 30 + 1e-6  # the deadline carried over, not one empty bucket
    value = store.client.get(store.calls.keys("held", (pro,))[0])
    assert len(value) == 72  # docs/design.md §9: still held, under pro's signature


def test_a_drain_survives_a_clock_step_back_no_longer_than_asked(store: RedisStore) -> None:
    limit = Limit(10, 1.0)
    store.drain("held", (limit,), 30 * 10**9)
    key_name = store.calls.keys("held", (limit,))[0]
    value = store.client.get(key_name)
    # docs/design.md §9: <dd (the state), the signature, <dddd (the hold)
    assert len(value) == 72
    tat_us, tat_frac = struct.unpack_from("<dd", value)
    until_us, for_us, held_us, held_frac = struct.unpack_from("<dddd", value, 40)
    shift = 3600 * 1_000_000  # as if written by a server clock an hour ahead
    ahead = (
        struct.pack("<dd", tat_us + shift, tat_frac)
        + value[16:40]
        + struct.pack("<dddd", until_us + shift, for_us, held_us, held_frac)
    )
    store.client.set(key_name, ahead, px=3_600_000)
    retry = store.acquire("held", (limit,), 1).retry_after
    assert 29 < retry <= 30 + 1e-6  # the 30 s asked, not an hour and 30 s


# -- keys ---------------------------------------------------------------------

_AWKWARD: list[str | bytes] = [
    "",
    "%",
    "%25",
    "%7B",
    "{",
    "}",
    "{}",
    "}{",
    "a:b",
    "{a}",
    "\x00",
    "a\x00b",
    b"\xff",
    "x" * 4096,
    b"{" * 4096,
    "é" * 2048,
]


@given(st.binary(max_size=64), st.binary(max_size=64))
def test_escaping_is_one_to_one_and_brace_free(first: bytes, second: bytes) -> None:
    if first != second:
        assert escape_key(first) != escape_key(second)
    for escaped in (escape_key(first), escape_key(second)):
        assert escaped
        assert b"{" not in escaped
        assert b"}" not in escaped


def test_every_limit_of_a_key_shares_one_cluster_slot(store: RedisStore) -> None:
    limits = (Limit(1, 1.0), Limit(5, 60.0, name="x{y}z"), Limit(3, 9.0, name="}"))
    for key in _AWKWARD:
        names = store.calls.keys(key, limits)
        assert len({key_slot(name) for name in names}) == 1, key
        tag = escape_key(key)
        assert {key_slot(tag)} == {key_slot(name) for name in names}


def test_awkward_keys_and_names_map_to_distinct_redis_keys(store: RedisStore) -> None:
    limits = (Limit(1, 1.0), Limit(5, 60.0, name="a"), Limit(5, 60.0, name="}a"))
    names = [name for key in _AWKWARD for name in store.calls.keys(key, limits)]
    assert len(set(names)) == len(names)


def test_awkward_keys_on_the_cluster_with_several_limits(
    redis_cluster: RedisCluster3, redis_prefix: str
) -> None:
    hourly, daily = Limit(len(_AWKWARD), 3600.0), Limit(100, 86400.0, name="d{a}y")
    with Limiter(redis_cluster.url, prefix=redis_prefix, deny_cache=False) as limiter:
        for index, key in enumerate(_AWKWARD):
            assert limiter.acquire(key, hourly, daily, cost=index + 1)  # no CROSSSLOT
        for index, key in enumerate(_AWKWARD):
            left = len(_AWKWARD) - index - 1  # tokens left; the peek asks for one more
            assert limiter.peek(key, hourly).remaining == max(left - 1, 0), index
        nodes = {
            limiter.store.client.get_node_from_key(escape_key(key)).name  # type: ignore[attr-defined]
            for key in _AWKWARD
        }
        assert len(nodes) > 1  # the keys really are spread over the masters


def test_the_prefix_comes_first_and_may_not_hold_braces(
    redis_server: RedisProcess, redis_prefix: str
) -> None:
    with Limiter(redis_server.url, prefix=redis_prefix) as limiter:
        limiter.acquire("alice", Limit(5, 60.0))
        found = limiter.store.client.keys(redis_prefix + "*")  # type: ignore[attr-defined]
        assert found == [redis_prefix.encode() + b"{alice}s:1/12000000000ns/5"]
    for bad in ["a{b", "}", "x" * 300]:
        with pytest.raises(ConfigurationError, match="prefix"):
            Limiter(redis_server.url, prefix=bad)


# -- options and URLs ----------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "match"),
    [
        ("on_error=maybe", "on_error"),
        ("timeout=0", "timeout"),
        ("timeout=soon", "timeout"),
        ("connect_timeout=-1", "connect_timeout"),
        ("connect_retries=-1", "connect_retries"),
        ("deny_cache=perhaps", "deny_cache"),
        ("deny_cache_size=0", "deny_cache_size"),
        ("max_connections=0", "max_connections"),
        ("colour=blue", "unknown option"),
        ("ssl_ca_certs=/x", "rediss"),
        ("db=x", "db"),
        ("prefix=a&prefix=b", "twice"),
    ],
)
def test_bad_options_raise_configuration_error(
    redis_server: RedisProcess, query: str, match: str
) -> None:
    with pytest.raises(ConfigurationError, match=match):
        Limiter(f"{redis_server.url}?{query}")


def test_url_options_are_parsed(redis_server: RedisProcess, redis_prefix: str) -> None:
    url = (
        f"{redis_server.url}?prefix={redis_prefix}&timeout=0.5&connect_timeout=0.25"
        "&connect_retries=0&on_error=deny&deny_cache=no&deny_cache_size=5&max_connections=4"
    )
    with Limiter(url) as limiter:
        store = limiter.store
        assert isinstance(store, RedisStore)
        kwargs = store.client.connection_pool.connection_kwargs
        assert kwargs["socket_timeout"] == 0.5
        assert kwargs["socket_connect_timeout"] == 0.25
        assert store.calls.policy.on_error == "deny"
        assert store.calls.deny is None
        assert store.client.connection_pool.max_connections == 4
        assert limiter.acquire("k", Limit(1, 60.0))


def test_a_clock_cannot_be_given_to_redis(redis_server: RedisProcess) -> None:
    with pytest.raises(ConfigurationError, match="server's clock"):
        Limiter(redis_server.url, clock=lambda: 0)


def test_a_url_needs_a_host_or_a_path() -> None:
    with pytest.raises(ConfigurationError):
        Limiter("redis://")
    with pytest.raises(ConfigurationError):
        Limiter("unix://")


def test_unix_socket_password_and_database(
    redis_process_factory: Any, redis_prefix: str, tmp_path: Any
) -> None:
    sock = tmp_path / "r.sock"
    server = redis_process_factory("--unixsocket", str(sock), "--requirepass", "s3cret")
    server.start()
    admin = redis.Redis(port=server.port, password="s3cret")  # noqa: S106 - a test server
    admin.acl_setuser(
        "ann", enabled=True, passwords=["+pw"], keys=["*"], commands=["+@all"], reset=True
    )
    admin.close()
    with Limiter(f"unix://:s3cret@{sock}?db=3&prefix={redis_prefix}") as limiter:
        assert limiter.acquire("k", Limit(2, 60.0)).remaining == 1
        assert limiter.store.client.connection_pool.connection_kwargs["db"] == 3  # type: ignore[attr-defined]
    url = f"redis://ann:pw@127.0.0.1:{server.port}/2?prefix={redis_prefix}"
    with Limiter(url) as limiter:
        assert limiter.acquire("k", Limit(2, 60.0)).remaining == 1
    with (
        Limiter(f"redis://ann:wrong@127.0.0.1:{server.port}/0") as limiter,
        pytest.raises(StoreError) as caught,
    ):
        limiter.acquire("k", Limit(2, 60.0))
    assert not isinstance(caught.value, StoreUnavailable)
    assert isinstance(caught.value.__cause__, redis.exceptions.RedisError)


def test_a_users_own_clients(
    redis_server: RedisProcess, redis_cluster: RedisCluster3, redis_prefix: str
) -> None:
    own = redis.Redis(port=redis_server.port)
    with Limiter(RedisStore(client=own, prefix=redis_prefix)) as limiter:
        assert limiter.acquire("k", Limit(3, 60.0)).remaining == 2
    assert own.ping()  # the store did not close a client it was lent
    cluster = redis.cluster.RedisCluster(host="127.0.0.1", port=redis_cluster.nodes[1].port)
    with Limiter(RedisStore(client=cluster, prefix=redis_prefix)) as limiter:
        assert limiter.acquire("k", Limit(3, 60.0), Limit(9, 60.0)).remaining == 2
    cluster.close()
    own.close()
    with pytest.raises(ConfigurationError, match="AsyncRedisStore"):
        RedisStore(client=redis.asyncio.Redis(port=redis_server.port))
    with pytest.raises(ConfigurationError):
        RedisStore(client=object())
    with pytest.raises(ConfigurationError, match="unknown option"):
        RedisStore(client=redis.Redis(port=redis_server.port), timeout=1.0)


# -- errors ----------------------------------------------------------------------


def _redis_exception_classes() -> list[type[BaseException]]:
    return [
        value
        for value in vars(redis.exceptions).values()
        if inspect.isclass(value)
        and issubclass(value, redis.exceptions.RedisError | redis.exceptions.RedisClusterException)
    ]


@pytest.mark.parametrize("kind", _redis_exception_classes(), ids=lambda kind: kind.__name__)
def test_every_redis_error_maps_to_a_store_error(kind: type[BaseException]) -> None:
    try:
        error = kind("3999 127.0.0.1:6381")  # the shape MOVED and ASK replies have
    except (TypeError, ValueError):
        error = kind.__new__(kind)
    mapped = map_error(error)
    assert isinstance(mapped, StoreError)
    expect_unavailable = issubclass(
        kind,
        redis.exceptions.ConnectionError
        | redis.exceptions.TimeoutError
        | redis.exceptions.ClusterDownError
        | redis.exceptions.TryAgainError
        | redis.exceptions.AskError
        | redis.exceptions.ReadOnlyError
        | redis.exceptions.RedisClusterException,
    ) and not issubclass(
        kind, redis.exceptions.AuthenticationError | redis.exceptions.AuthorizationError
    )
    assert isinstance(mapped, StoreUnavailable) == expect_unavailable, kind


def test_every_redis_exception_class_is_named_in_the_error_table() -> None:
    """A class redis-py adds later fails here until someone decides what it means."""
    from bucketcore.backends.redis.errors import KINDS

    unnamed = [kind.__name__ for kind in _redis_exception_classes() if kind not in KINDS]
    assert unnamed == []


def test_an_unreachable_server_raises_store_unavailable_chained() -> None:
    from support.servers import free_port

    url = f"redis://127.0.0.1:{free_port()}/0?timeout=0.5&connect_retries=0"
    with Limiter(url) as limiter, pytest.raises(StoreUnavailable) as caught:
        limiter.acquire("k", Limit(1, 1.0))
    assert isinstance(caught.value.__cause__, redis.exceptions.ConnectionError)


def test_degraded_decisions_log_once_per_outage(caplog: pytest.LogCaptureFixture) -> None:
    from support.servers import free_port

    limit = Limit(2, 60.0)
    url = f"redis://127.0.0.1:{free_port()}/0?timeout=0.5&connect_retries=0"
    with caplog.at_level(logging.WARNING, logger="bucketcore.redis"):
        with Limiter(url, on_error="allow") as limiter:
            decisions = [limiter.acquire("k", limit) for _ in range(5)]
            assert all(d.allowed and d.degraded for d in decisions)
            assert limiter.try_acquire("k", limit)
            many = limiter.acquire_many([("a", limit, 1), ("b", limit, 3)])
            assert [d.degraded for d in many] == [True, True]
        with Limiter(url, on_error="deny") as limiter:
            denied = limiter.acquire("k", limit)
            assert not denied.allowed
            assert denied.degraded
            assert denied.retry_after == pytest.approx(30.0)
            assert limiter.acquire("k", limit, cost=3).retry_after == math.inf
            assert not limiter.try_acquire("k", limit)
    outage_logs = [r for r in caplog.records if "unavailable" in r.getMessage()]
    assert len(outage_logs) == 2  # once per store's outage, not once per call


# -- NOSCRIPT, the deny cache, acquire_many --------------------------------------


def test_a_flushed_script_is_loaded_again_and_run_once(store: RedisStore) -> None:
    limit = Limit(3, 3600.0)
    assert store.acquire("k", (limit,), 1).remaining == 2
    store.client.script_flush()
    assert not store.client.script_exists(SCRIPT_SHA)[0]
    assert store.acquire("k", (limit,), 1).remaining == 1  # charged once, not twice
    assert store.client.script_exists(SCRIPT_SHA)[0]
    store.client.script_flush()
    decisions = store.acquire_many([("m", (limit,), 1)] * 4)
    assert [d.remaining for d in decisions] == [2, 1, 0, 0]
    assert [d.allowed for d in decisions] == [True, True, True, False]


def _count_round_trips(store: RedisStore, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    sent = [0]
    original = redis.connection.Connection.send_packed_command

    def counting(self: Any, command: Any, check_health: bool = True) -> None:
        sent[0] += 1
        original(self, command, check_health)

    monkeypatch.setattr(redis.connection.Connection, "send_packed_command", counting)
    return sent


def test_acquire_many_is_one_round_trip(store: RedisStore, monkeypatch: pytest.MonkeyPatch) -> None:
    limit = Limit(50, 3600.0)
    store.acquire("warm", (limit,), 1)
    events: list[str] = []
    connection = redis.connection.Connection
    send, read = connection.send_packed_command, connection.read_response

    def sending(self: Any, *args: Any, **kwargs: Any) -> Any:
        events.append("send")
        return send(self, *args, **kwargs)

    def reading(self: Any, *args: Any, **kwargs: Any) -> Any:
        events.append("read")
        return read(self, *args, **kwargs)

    monkeypatch.setattr(connection, "send_packed_command", sending)
    monkeypatch.setattr(connection, "read_response", reading)
    decisions = store.acquire_many([(f"k{i % 10}", (limit,), 1) for i in range(250)])
    first_read = events.index("read")
    assert "read" not in events[:first_read]
    assert "send" not in events[first_read:]
    assert first_read == 1  # two runs of up to 128 calls, sent in one write before any read
    assert [d.remaining for d in decisions[:10]] == [49] * 10
    assert [d.remaining for d in decisions[-10:]] == [25] * 10


def test_acquire_many_on_the_cluster_groups_by_master(
    redis_cluster: RedisCluster3, redis_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    limit = Limit(5, 3600.0)
    with Limiter(redis_cluster.url, prefix=redis_prefix, deny_cache=False) as limiter:
        store = limiter.store
        assert isinstance(store, RedisStore)
        requests = [(f"user{i % 30}", limit, 1) for i in range(90)]
        limiter.acquire_many(requests)  # connects to and loads the script on every master
        sent = _count_round_trips(store, monkeypatch)
        decisions = limiter.acquire_many(requests)
        assert sent[0] == 3  # one pipeline per master
        assert [d.remaining for d in decisions[:30]] == [1] * 30
        assert [d.allowed for d in decisions[-30:]] == [False] * 30


def test_the_deny_cache_answers_repeat_denials_without_a_round_trip(
    redis_server: RedisProcess, redis_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    limit = Limit(2, 3600.0)
    with Limiter(redis_server.url, prefix=redis_prefix) as limiter:
        store = limiter.store
        assert isinstance(store, RedisStore)
        assert limiter.acquire("abuser", limit, cost=2)
        first = limiter.acquire("abuser", limit)
        assert not first
        sent = _count_round_trips(store, monkeypatch)
        repeats = [limiter.acquire("abuser", limit) for _ in range(50)]
        assert not any(limiter.try_acquire("abuser", limit) for _ in range(50))
        assert sent[0] == 0
        assert all(not d and d.remaining == 0 for d in repeats)
        assert repeats[-1].retry_after <= first.retry_after
        assert repeats[-1].retry_after > 1700
        assert limiter.acquire("other", limit)  # other keys still ask Redis
        assert sent[0] == 1
        limiter.refund("abuser", limit)  # a local refund clears the cache
        assert limiter.acquire("abuser", limit)
        assert sent[0] == 3


def test_the_deny_cache_lets_a_smaller_cost_through(
    redis_server: RedisProcess, redis_prefix: str
) -> None:
    limit = Limit(3, 3600.0)
    with Limiter(redis_server.url, prefix=redis_prefix) as limiter:
        assert limiter.acquire("k", limit, cost=2)
        assert not limiter.acquire("k", limit, cost=2)
        assert limiter.acquire("k", limit, cost=1)  # one token is still there
        assert not limiter.acquire("k", limit, cost=4)
        assert not limiter.acquire("k", limit, cost=1)
        limiter.reset("k", limit)  # a local reset clears it too
        assert limiter.acquire("k", limit, cost=3)


# -- asyncio --------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["redis", "cluster"])
def test_the_async_limiter_over_redis_asyncio(
    where: str,
    redis_server: RedisProcess,
    redis_cluster: RedisCluster3,
    redis_prefix: str,
) -> None:
    url = redis_server.url if where == "redis" else redis_cluster.url
    limit, daily = Limit(3, 3600.0), Limit(10, 86400.0)

    async def main() -> None:
        async with AsyncLimiter(url, prefix=redis_prefix) as limiter:
            assert isinstance(limiter.store, AsyncRedisStore)
            assert (await limiter.acquire("a", limit, daily)).remaining == 2
            assert await limiter.try_acquire("a", limit)
            assert (await limiter.peek("a", limit)).remaining == 0
            many = await limiter.acquire_many([("a", limit, 1), ("b", limit, 1), ("b", limit, 1)])
            assert [d.remaining for d in many] == [0, 2, 1]
            assert [d.allowed for d in many] == [True, True, True]
            assert not await limiter.try_acquire("a", limit)
            await limiter.refund("a", limit)
            assert await limiter.try_acquire("a", limit)
            await limiter.reset("a", limit)
            results = await asyncio.gather(*(limiter.try_acquire("c", limit) for _ in range(10)))
            assert sum(results) == 3

    asyncio.run(main())


def test_an_async_users_own_client(redis_server: RedisProcess, redis_prefix: str) -> None:
    async def main() -> None:
        client = redis.asyncio.Redis(port=redis_server.port)
        async with AsyncLimiter(AsyncRedisStore(client=client, prefix=redis_prefix)) as limiter:
            assert (await limiter.acquire("k", Limit(2, 60.0))).remaining == 1
            await client.script_flush()
            assert (await limiter.acquire("k", Limit(2, 60.0))).remaining == 0
        assert await client.ping()
        await client.aclose()

    asyncio.run(main())
    with pytest.raises(ConfigurationError, match=r"redis\.asyncio"):
        AsyncRedisStore(client=redis.Redis(port=redis_server.port))


def test_async_unreachable_raises_or_degrades() -> None:
    from support.servers import free_port

    url = f"redis://127.0.0.1:{free_port()}/0?timeout=0.5&connect_retries=0"

    async def main() -> None:
        async with AsyncLimiter(url) as limiter:
            with pytest.raises(StoreUnavailable):
                await limiter.acquire("k", Limit(1, 1.0))
        async with AsyncLimiter(url, on_error="allow") as limiter:
            decision = await limiter.acquire("k", Limit(1, 1.0))
            assert decision.allowed
            assert decision.degraded

    asyncio.run(main())


def test_a_missing_redis_extra_names_the_pip_command(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from bucketcore.store import open_store

    for name in [name for name in sys.modules if name == "redis" or name.startswith("redis.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.delitem(sys.modules, "bucketcore.backends.redis")
    monkeypatch.setitem(sys.modules, "redis", None)  # what an absent package looks like
    with pytest.raises(ConfigurationError, match=r"pip install 'bucketcore\[redis\]'"):
        open_store("redis://localhost:6379/0")


def test_rediss_with_a_verified_certificate(
    redis_process_factory: Any, redis_prefix: str, tmp_path: Any
) -> None:
    import shutil
    import subprocess

    from support.servers import free_port

    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl (to make a test certificate) not found")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    make_certificate = [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
    make_certificate += ["-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost"]
    make_certificate += ["-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"]
    subprocess.run(make_certificate, check=True, capture_output=True)
    tls_port = free_port()
    server = redis_process_factory(
        "--tls-port", str(tls_port), "--tls-cert-file", str(cert), "--tls-key-file", str(key)
    )
    server.extra += ("--tls-ca-cert-file", str(cert), "--tls-auth-clients", "no")
    try:
        server.start()
    except RuntimeError as exc:
        pytest.skip(f"this server has no TLS: {exc}")
    url = f"rediss://127.0.0.1:{tls_port}/0?prefix={redis_prefix}&ssl_ca_certs={cert}"
    with Limiter(url) as limiter:
        assert limiter.acquire("k", Limit(2, 60.0)).remaining == 1
    with Limiter(url.replace(f"&ssl_ca_certs={cert}", "")) as limiter, pytest.raises(StoreError):
        limiter.acquire("k", Limit(2, 60.0))  # an unknown issuer is refused
    with pytest.raises(ConfigurationError, match="rediss"):
        Limiter(f"redis://127.0.0.1:{tls_port}/0?ssl_ca_certs={cert}")


@pytest.mark.parametrize("failing", ["send_packed_command", "read_response"])
def test_acquire_many_that_fails_midway_degrades_the_unanswered_calls_and_recovers(
    redis_server: RedisProcess, redis_prefix: str, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    """250 calls go out as two runs in one write; the write, or the second reply, fails."""
    limit = Limit(50, 3600.0)
    # No breaker: the call right after the failure goes to Redis.
    url = f"{redis_server.url}?prefix={redis_prefix}&on_error=deny&breaker_cooldown=0"
    with Limiter(url) as limiter:
        limiter.acquire("warm", limit)
        connection = redis.connection.Connection
        original = getattr(connection, failing)
        uses = [0]

        def failing_the_last_time(self: Any, *args: Any, **kwargs: Any) -> Any:
            uses[0] += 1
            if uses[0] == (1 if failing == "send_packed_command" else 2):
                self.disconnect()
                raise redis.exceptions.ConnectionError("the network went away")
            return original(self, *args, **kwargs)

        monkeypatch.setattr(connection, failing, failing_the_last_time)
        decisions = limiter.acquire_many([(f"k{i % 7}", limit, 1) for i in range(250)])
        answered = 0 if failing == "send_packed_command" else 128  # the first run's reply
        assert not any(decision.degraded for decision in decisions[:answered])
        assert all(d.degraded and not d.allowed for d in decisions[answered:])
        monkeypatch.setattr(connection, failing, original)
        again = limiter.acquire_many([("fresh", limit, 1)] * 3)
        assert [d.remaining for d in again] == [49, 48, 47]  # no stale reply was read
        assert not any(d.degraded for d in again)


def test_the_cluster_reloads_a_flushed_script_on_every_master(
    redis_cluster: RedisCluster3, redis_prefix: str
) -> None:
    limit = Limit(4, 3600.0)
    requests = [(f"user{i % 20}", limit, 1) for i in range(40)]
    with Limiter(redis_cluster.url, prefix=redis_prefix, deny_cache=False) as limiter:
        assert all(limiter.acquire_many(requests))
        for node in redis_cluster.nodes:
            flusher = redis.Redis(port=node.port)
            flusher.script_flush()
            flusher.close()
        decisions = limiter.acquire_many(requests)
        assert [d.remaining for d in decisions[:20]] == [1] * 20  # charged once each
        assert [d.remaining for d in decisions[20:]] == [0] * 20
        for node in redis_cluster.nodes:
            flusher = redis.Redis(port=node.port)
            flusher.script_flush()
            flusher.close()
        assert not limiter.acquire("user0", limit)  # single calls reload it too
        assert limiter.peek("user19", limit).remaining == 0


# redis-py's topology refresh after MOVED drops a node connection unclosed.
@pytest.mark.filterwarnings("ignore::ResourceWarning")
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_moved_slot_is_followed_without_charging_twice(
    redis_cluster: RedisCluster3, redis_prefix: str
) -> None:
    """A stale slot table (as after resharding) gets MOVED; the call is re-sent, once."""
    limit = Limit(5, 3600.0)
    with Limiter(redis_cluster.url, prefix=redis_prefix, deny_cache=False) as limiter:
        store: Any = limiter.store
        assert limiter.acquire("mover", limit).remaining == 4
        slot = key_slot(escape_key("mover"))
        manager = store.client.nodes_manager
        owner = manager.slots_cache[slot][0]
        other = next(node for node in manager.nodes_cache.values() if node.name != owner.name)
        manager.slots_cache[slot] = [other]  # lie: send this slot to the wrong master
        assert limiter.acquire("mover", limit).remaining == 3
        manager.slots_cache[slot] = [other]
        decisions = limiter.acquire_many([("mover", limit, 1)] * 2)
        assert [d.remaining for d in decisions] == [2, 1]
    gc.collect()  # here, where the dropped connection's warning is expected
