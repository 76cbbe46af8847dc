"""Validation and canonical forms of user keys and costs.

A key is ``str`` (stored as its UTF-8 bytes) or ``bytes``, at most 4096
bytes. ``"alice"`` and ``b"alice"`` are the same key on every backend.

>>> canonical_key(b"alice") == canonical_key("alice")
True
"""

from __future__ import annotations

from typing import cast

from bucketcore.errors import ConfigurationError, shown
from bucketcore.limit import Limit

__all__ = [
    "MAX_KEY_BYTES",
    "Key",
    "canonical_key",
    "check_call",
    "check_cost",
    "check_key",
    "check_limits",
    "key_bytes",
]

MAX_KEY_BYTES = 4096

Key = str | bytes
"""A user key: ``str`` (stored as UTF-8) or ``bytes``."""


def check_key(key: object) -> None:
    """Raise ``ConfigurationError`` unless ``key`` is a valid key.

    >>> check_key("user:42")
    """
    kind = type(key)
    if kind is str:
        if key.isascii() and len(key) <= MAX_KEY_BYTES:  # type: ignore[attr-defined,arg-type]
            return
        key_bytes(key)  # type: ignore[arg-type]
    elif kind is bytes:
        if len(key) > MAX_KEY_BYTES:  # type: ignore[arg-type]
            raise ConfigurationError(f"key is {len(key)} bytes, more than {MAX_KEY_BYTES}")  # type: ignore[arg-type]
    else:
        raise ConfigurationError(f"key must be str or bytes, got {type(key).__name__}")


def key_bytes(key: Key) -> bytes:
    """The stored form of a valid key: its UTF-8 bytes.

    >>> key_bytes("é")
    b'\\xc3\\xa9'
    """
    if type(key) is bytes:
        data = key
    else:
        try:
            data = key.encode("utf-8")  # type: ignore[union-attr]
        except UnicodeEncodeError as exc:
            raise ConfigurationError(f"key is not valid Unicode: {shown(key)}") from exc
    if len(data) > MAX_KEY_BYTES:
        raise ConfigurationError(f"key is {len(data)} bytes, more than {MAX_KEY_BYTES}")
    return data


def canonical_key(key: Key) -> Key:
    """The in-memory form: a ``str`` whenever the key is valid UTF-8.

    Bytes that are not UTF-8 stay bytes, and no str equals them, so the
    mapping is one-to-one.

    >>> canonical_key(b"\\xff")
    b'\\xff'
    """
    if type(key) is bytes:
        try:
            return key.decode("utf-8")
        except UnicodeDecodeError:
            return key
    return key


def check_cost(cost: object, what: str = "cost") -> int:
    """Raise ``ConfigurationError`` unless ``cost`` is an int >= 1.

    >>> check_cost(3)
    3
    """
    if type(cost) is not int:
        raise ConfigurationError(f"{what} must be an int, got {shown(cost)}")
    if cost < 1:
        raise ConfigurationError(f"{what} must be >= 1, got {shown(cost)}")
    return cost


def check_limits(limits: tuple[object, ...]) -> tuple[Limit, ...]:
    """Raise ``ConfigurationError`` unless ``limits`` are distinct ``Limit`` objects.

    >>> len(check_limits((Limit(1, 1), Limit(2, 1))))
    2
    """
    if not limits:
        raise ConfigurationError("give at least one Limit")
    for limit in limits:
        if type(limit) is not Limit:
            raise ConfigurationError(f"limits must be Limit objects, got {shown(limit)}")
    checked = cast(tuple[Limit, ...], limits)
    if len(checked) > 1 and len({limit.identity for limit in checked}) != len(checked):
        raise ConfigurationError(f"the same limit is given twice: {[str(x) for x in checked]}")
    return checked


def check_call(key: object, limits: tuple[object, ...], cost: object) -> tuple[Limit, ...]:
    """Validate one call's key, limits and cost; the limits as a tuple.

    The common case (an ASCII str key, an int cost, one Limit) costs three
    tests; anything else goes through the full checks and their messages.

    >>> check_call("alice", (Limit(1, 1.0),), 1) == (Limit(1, 1.0),)
    True
    """
    if type(key) is not str or len(key) > MAX_KEY_BYTES or not key.isascii():
        check_key(key)
    if type(cost) is not int or cost < 1:
        check_cost(cost)
    if len(limits) == 1 and type(limits[0]) is Limit:
        return cast(tuple[Limit, ...], limits)
    return check_limits(limits)
