"""What an HTTP integration sends: limiter keys from request text, and the 429/503 answers.

These have no request and no limiter in them; ``bucketcore.integrations.http``
(the decision step) uses them and re-exports them.

>>> from bucketcore import Decision, Limit
>>> denied(Decision(False, 0, 3.2, 9.0, Limit(7, 30, name="general"))).status
429
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from bucketcore.decision import Decision

__all__ = [
    "Answer",
    "DeniedHook",
    "api_key",
    "basic_auth_user",
    "binding_decision",
    "bounded_key",
    "denied",
    "denied_body",
    "unavailable",
    "unavailable_body",
]

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


def denied(decision: Decision, headers: dict[str, str] | None = None) -> Answer:
    """The 429 for a denied ``decision``: its headers (or ``headers``) and the JSON body.

    >>> from bucketcore import Limit
    >>> answer = denied(Decision(False, 0, 3.2, 9.0, Limit(7, 30, name="general")))
    >>> answer.status, answer.headers["Retry-After"], answer.headers["Content-Type"]
    (429, '4', 'application/json')
    """
    sent = decision.headers() if headers is None else headers
    return Answer(429, {**_JSON, **sent}, denied_body(decision))


def unavailable() -> Answer:
    """The 503 sent when the store fails and the policy is ``"503"``."""
    return Answer(503, {**_JSON, "Retry-After": "1"}, unavailable_body())


DeniedHook = Callable[[Decision], Answer]
"""Builds the response to a denial (a custom 429); its headers win over ours."""
