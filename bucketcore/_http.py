"""What every HTTP integration shares: keys, limit specs, bodies, policy.

Nothing here imports a web framework, so the Flask extension and the ASGI
middleware give the same answers: the same keys for the same client, the
same 429 body, the same 503 on a store failure.

>>> from bucketcore import Limit
>>> limits_from("7/30s", name="general")
(Limit(tokens=7, period=30.0, burst=7, name='general'),)
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Sequence
from typing import Literal

from bucketcore.decision import Decision
from bucketcore.errors import ConfigurationError
from bucketcore.limit import Limit

__all__ = [
    "LimitSpec",
    "OnStoreError",
    "PoolRegistry",
    "api_key",
    "basic_auth_user",
    "binding_decision",
    "bounded_key",
    "check_on_store_error",
    "denied_body",
    "limits_from",
    "unavailable_body",
]

LimitSpec = str | Limit | Sequence[Limit]
OnStoreError = Literal["503", "pass"]

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


def check_on_store_error(policy: object) -> OnStoreError:
    """Validate the HTTP failure policy: ``"503"`` (fail closed) or ``"pass"``.

    >>> check_on_store_error("pass")
    'pass'
    """
    if policy not in ("503", "pass"):
        raise ConfigurationError(f"on_store_error must be '503' or 'pass', got {policy!r}")
    return policy


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
