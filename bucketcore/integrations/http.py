"""The one HTTP decision step, and what every integration shares with it.

A ``Check`` (key, limits, cost, where, failure policy, hooks) and the
limiter's answer (a ``Decision``, or the ``StoreError`` it raised) make a
``Verdict``: the hook event emitted, the headers to add, and either "go on"
(``answer is None``) or the ``Answer`` to send instead: a 429, or a 503 when
the store failed. ``verdict`` is that step, without I/O; ``decide`` and
``decide_async`` ask a ``Limiter`` or an ``AsyncLimiter``, run the step and
emit its event. The Flask extension, the ASGI middleware and
``rate_limited`` only read their request and write their response around
it, so they give the same answers: the same keys for the same client, the
same 429 body, the same 503 on a store failure.

>>> from bucketcore import Limit, Limiter
>>> check = Check("ip:127.0.0.1", limits_from("1/minute", name="general"))
>>> limiter = Limiter()
>>> decide(limiter, check).answer is None
True
>>> decide(limiter, check).answer.status
429
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, Literal, overload

from bucketcore._keys import Key
from bucketcore.decision import Decision
from bucketcore.errors import ConfigurationError, StoreError
from bucketcore.integrations.hooks import DecisionEvent, Hook, emit
from bucketcore.limit import Limit
from bucketcore.limiter import AsyncLimiter, Limiter

__all__ = [
    "Answer",
    "Check",
    "LimitSpec",
    "OnStoreError",
    "PoolRegistry",
    "Verdict",
    "api_key",
    "basic_auth_user",
    "binding_decision",
    "bounded_key",
    "check_on_store_error",
    "decide",
    "decide_async",
    "denied",
    "denied_body",
    "limits_from",
    "unavailable_body",
    "verdict",
]

LimitSpec = str | Limit | Sequence[Limit]
# "503": fail closed; "pass": serve the request unlimited; "raise": the
# StoreError propagates to the caller (rate_limited, which has no response).
OnStoreError = Literal["503", "pass", "raise"]

# Client-chosen text (user names, header values) becomes a limiter key. Past
# this size it is replaced by its digest, so no client can make a key that
# the limiter refuses (4096 bytes) and turn a 429 into a 500.
_MAX_PLAIN_BYTES = 200


def bounded_key(prefix: str, value: str) -> str:
    """``prefix:value``, with an over-long ``value`` replaced by its SHA-256.

    The prefix keeps kinds apart: user "1.2.3.4" is not IP 1.2.3.4.

    >>> bounded_key("user", "alice")
    'user:alice'
    >>> bounded_key("user", "x" * 300).startswith("user#")
    True
    """
    raw = value.encode("utf-8", "surrogatepass")
    if len(raw) <= _MAX_PLAIN_BYTES:
        return f"{prefix}:{value}"
    return f"{prefix}#{hashlib.sha256(raw).hexdigest()}"


def api_key(value: str) -> str:
    """The limiter key for an API key: always a digest, never the secret.

    A rate-limit store (Redis, a RocksDB directory) is not a place for
    credentials, and the digest still tells clients apart.

    >>> api_key("s3cret") == api_key("s3cret") != api_key("other")
    True
    """
    digest = hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()
    return "api#" + digest[:40]


def basic_auth_user(authorization: str | None) -> str | None:
    """The user name of an HTTP Basic ``Authorization`` header, else None.

    >>> basic_auth_user("Basic " + base64.b64encode(b"alice:pw").decode())
    'alice'
    >>> basic_auth_user("Bearer abc") is None, basic_auth_user("Basic !!!") is None
    (True, True)
    """
    if not authorization:
        return None
    scheme, _, credentials = authorization.strip().partition(" ")
    if scheme.lower() != "basic" or not credentials:
        return None
    try:
        decoded = base64.b64decode(credentials.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, colon, _ = decoded.partition(":")
    return user if colon and user else None


def limits_from(
    spec: LimitSpec, *, name: str | None = None, for_http: bool = True
) -> tuple[Limit, ...]:
    """Limits from ``"7/30s"``, ``"10/s; 1000/day"``, a ``Limit`` or a list.

    With several limits in one spec, ``name`` prefixes each one's spec so
    their names stay distinct (they are decided together, all or nothing).

    >>> [str(x) for x in limits_from("10/s; 100/h", name="api")]
    ['api:10/1s=10/1s', 'api:100/3600s=100/3600s']
    >>> limits_from("1/s", name="x\\r\\nSet-Cookie: a=b")
    Traceback (most recent call last):
    ...
    bucketcore.errors.ConfigurationError: a limit name used over HTTP must be printable ASCII, ...
    """
    if isinstance(spec, Limit):
        limits: tuple[Limit, ...] = (spec,)
    elif isinstance(spec, str):
        limits = tuple(Limit.parse_many(spec))
    elif isinstance(spec, Sequence) and spec and all(isinstance(x, Limit) for x in spec):
        limits = tuple(x for x in spec if isinstance(x, Limit))
    else:
        raise ConfigurationError(f"a limit is a spec like '7/30s', a Limit or Limits: {spec!r}")
    if name is not None:
        if len(limits) == 1:
            (limit,) = limits
            limits = (Limit(limit.tokens, limit.period, burst=limit.burst, name=name),)
        else:
            limits = tuple(
                Limit(x.tokens, x.period, burst=x.burst, name=f"{name}:{x}") for x in limits
            )
            names = [limit.name for limit in limits]
            if len(set(names)) != len(names):
                raise ConfigurationError(f"the limits of {name!r} are not distinct: {names}")
    for limit in limits if for_http else ():
        # The name goes into HTTP headers: printable ASCII only, so no header
        # can be broken (a newline) or refused by the server (non-Latin-1).
        if limit.name is not None and not (limit.name.isascii() and limit.name.isprintable()):
            raise ConfigurationError(
                f"a limit name used over HTTP must be printable ASCII, got {limit.name!r}"
            )
    return limits


class PoolRegistry:
    """Refuses two different limits under one pool name.

    A name is a shared pool: ``/pizza`` and ``/pasta`` both saying
    ``name="general"`` draw on one bucket per key. If they disagreed about
    its size the bucket would be checked against two rates, so that is an
    error, raised when the second one is registered.

    >>> pools = PoolRegistry()
    >>> pools.register(limits_from("7/30s", name="general"))
    >>> pools.register(limits_from("8/30s", name="general"))
    Traceback (most recent call last):
    ...
    bucketcore.errors.ConfigurationError: pool 'general' is 8/30s here but 7/30s elsewhere
    """

    def __init__(self) -> None:
        self._pools: dict[str, Limit] = {}

    def register(self, limits: tuple[Limit, ...]) -> None:
        for limit in limits:
            if limit.name is None:
                continue
            known = self._pools.setdefault(limit.name, limit)
            if known != limit:
                here = str(limit).partition("=")[2]
                there = str(known).partition("=")[2]
                raise ConfigurationError(
                    f"pool {limit.name!r} is {here} here but {there} elsewhere"
                )


def check_on_store_error(policy: object) -> Literal["503", "pass"]:
    """Validate the HTTP failure policy: ``"503"`` (fail closed) or ``"pass"``.

    >>> check_on_store_error("pass")
    'pass'
    """
    if policy == "503" or policy == "pass":
        return policy
    raise ConfigurationError(f"on_store_error must be '503' or 'pass', got {policy!r}")


def binding_decision(decisions: Sequence[Decision]) -> Decision:
    """The decision whose headers a response carries: a denial, else the tightest.

    >>> from bucketcore import Limit
    >>> a = Decision(True, 5, 0.0, 1.0, Limit(9, 9))
    >>> b = Decision(True, 1, 0.0, 8.0, Limit(2, 9))
    >>> binding_decision([a, b]) is b
    True
    """
    denied = [d for d in decisions if not d.allowed]
    if denied:
        return max(denied, key=lambda d: d.retry_after)
    return min(decisions, key=lambda d: (d.remaining, -d.reset_after))


def denied_body(decision: Decision) -> bytes:
    """The JSON body of a 429: what was exceeded and when to come back.

    >>> from bucketcore import Limit
    >>> denied_body(Decision(False, 0, 3.2, 9.0, Limit(7, 30, name="general")))
    b'{"error": "rate_limited", "limit": "general", "retry_after": 4}\\n'
    >>> denied_body(Decision(False, 0, float("inf"), 9.0, Limit(7, 30)))
    b'{"error": "rate_limited", "limit": "7/30s", "retry_after": null}\\n'
    """
    # The header's own rounding, so body and Retry-After never disagree.
    header = decision.headers().get("Retry-After")
    retry = None if header is None else int(header)
    body = {"error": "rate_limited", "limit": decision.limit.label, "retry_after": retry}
    return json.dumps(body).encode() + b"\n"


def unavailable_body() -> bytes:
    """The JSON body of the 503 sent when the store fails (policy ``"503"``).

    >>> unavailable_body()
    b'{"error": "rate_limiter_unavailable", "retry_after": 1}\\n'
    """
    body = {"error": "rate_limiter_unavailable", "retry_after": 1}
    return json.dumps(body).encode() + b"\n"


_JSON = {"Content-Type": "application/json"}


@dataclass(frozen=True, slots=True)
class Answer:
    """The response sent instead of the application's: a 429 or a 503.

    >>> unavailable().status, unavailable().headers["Retry-After"]
    (503, '1')
    """

    status: int
    headers: dict[str, str]
    body: bytes


def denied(decision: Decision) -> Answer:
    """The 429 for a denied ``decision``: its headers and the JSON body.

    >>> from bucketcore import Limit
    >>> answer = denied(Decision(False, 0, 3.2, 9.0, Limit(7, 30, name="general")))
    >>> answer.status, answer.headers["Retry-After"], answer.headers["Content-Type"]
    (429, '4', 'application/json')
    """
    return Answer(429, {**_JSON, **decision.headers()}, denied_body(decision))


def unavailable() -> Answer:
    """The 503 sent when the store fails and the policy is ``"503"``."""
    return Answer(503, {**_JSON, "Retry-After": "1"}, unavailable_body())


@dataclass(frozen=True, slots=True)
class Check:
    """One check of one request (or call): what to take, from which pools.

    ``source`` says where, for the hooks (a Flask endpoint, an ASGI path, a
    function's name). ``wait`` (with ``timeout``) waits for the tokens
    instead of taking or refusing them at once (``rate_limited(wait=True)``).

    >>> from bucketcore import Limit
    >>> Check("user:alice", (Limit(7, 30),), cost=2).on_store_error
    '503'
    """

    key: Key
    limits: tuple[Limit, ...]
    cost: int = 1
    source: str = ""
    on_store_error: OnStoreError = "503"
    hooks: tuple[Hook, ...] = ()
    wait: bool = False
    timeout: float | None = None


@dataclass(frozen=True, slots=True)
class Verdict:
    """What to do with a request: go on (``answer is None``) or answer instead.

    ``event`` is what the hooks are told; ``headers`` go on the response
    when the request goes on (none after a store failure let it pass).
    """

    event: DecisionEvent
    headers: dict[str, str]
    answer: Answer | None

    @property
    def decision(self) -> Decision | None:
        """The limiter's decision; None when the store failed."""
        return self.event.decision


def verdict(check: Check, outcome: Decision | StoreError) -> Verdict:
    """The step itself: the limiter's decision (or its failure) to a ``Verdict``.

    Pure: it emits nothing and raises nothing.

    >>> from bucketcore import Limit
    >>> from bucketcore.errors import StoreUnavailable
    >>> check = Check("k", (Limit(1, 60),), source="/pizza")
    >>> failed = verdict(check, StoreUnavailable("redis down"))
    >>> failed.event.outcome, failed.answer.status, failed.headers
    ('error', 503, {})
    >>> from dataclasses import replace
    >>> verdict(replace(check, on_store_error="pass"), StoreUnavailable("down")).answer is None
    True
    """
    if isinstance(outcome, StoreError):
        event = DecisionEvent(check.key, check.limits, "error", None, outcome, check.source)
        answer = unavailable() if check.on_store_error == "503" else None
        return Verdict(event, {}, answer)
    event = DecisionEvent.of(check.key, check.limits, outcome, source=check.source)
    if not outcome.allowed:
        return Verdict(event, outcome.headers(), denied(outcome))
    return Verdict(event, outcome.headers(), None)


def _emitted(check: Check, outcome: Decision | StoreError) -> Verdict:
    """The verdict, after telling the hooks; a store error re-raised under "raise"."""
    result = verdict(check, outcome)
    emit(check.hooks, result.event)
    if isinstance(outcome, StoreError) and check.on_store_error == "raise":
        raise outcome
    return result


@overload
def _take(limiter: Limiter, check: Check) -> Decision: ...
@overload
def _take(limiter: AsyncLimiter, check: Check) -> Coroutine[Any, Any, Decision]: ...
def _take(limiter: Limiter | AsyncLimiter, check: Check) -> object:
    """The limiter call a check makes: a decision, or a coroutine of one."""
    if check.wait:
        return limiter.wait(check.key, *check.limits, cost=check.cost, timeout=check.timeout)
    return limiter.acquire(check.key, *check.limits, cost=check.cost)


def decide(limiter: Limiter, check: Check) -> Verdict:
    """Take (or wait for) the tokens of ``check``, tell the hooks, say what to do.

    See the module docstring for an example.
    """
    try:
        decision = _take(limiter, check)
    except StoreError as exc:
        return _emitted(check, exc)
    return _emitted(check, decision)


async def decide_async(limiter: AsyncLimiter, check: Check) -> Verdict:
    """``decide`` for an ``AsyncLimiter``: the decision is awaited.

    >>> import asyncio
    >>> from bucketcore import AsyncLimiter, Limit
    >>> check = Check("k", (Limit(1, 60),))
    >>> asyncio.run(decide_async(AsyncLimiter(), check)).event.outcome
    'allowed'
    """
    try:
        decision = await _take(limiter, check)
    except StoreError as exc:
        return _emitted(check, exc)
    return _emitted(check, decision)
