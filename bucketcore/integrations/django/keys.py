"""Key functions of a Django ``HttpRequest``: who is asking.

A key function returns a str (the bucket's key) or None (it cannot tell:
no user, no header); the request is then limited by its IP address, so
leaving credentials out is never a way around a limit.

``by_ip`` trusts ``X-Forwarded-For`` only as far as
``settings.BUCKETCORE_TRUSTED_PROXIES`` says: the number of reverse
proxies in front of the app (default 0: ``REMOTE_ADDR`` is the client).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

# The module, not its lazy ``settings``: doctest collection must not touch them.
from django import conf

from bucketcore.integrations.http import api_key, basic_auth_user, bounded_key

__all__ = [
    "RequestKeyFunc",
    "by_api_key",
    "by_basic_auth",
    "by_header",
    "by_ip",
    "by_user",
    "client_ip",
]

RequestKeyFunc = Callable[[Any], str | None]


def client_ip(meta: Mapping[str, Any], trusted_proxies: int = 0) -> str:
    """The client's address, with ``trusted_proxies`` reverse proxies in front.

    Each proxy appends the address it was called from to ``X-Forwarded-For``,
    so the client is the entry ``trusted_proxies`` from the right; what is
    left of it was written by the client and proves nothing. A request that
    passed fewer proxies than that did not come through them: its
    ``REMOTE_ADDR`` is the client.

    >>> meta = {"REMOTE_ADDR": "10.0.0.2", "HTTP_X_FORWARDED_FOR": "6.6.6.6, 1.2.3.4, 10.0.0.1"}
    >>> client_ip(meta), client_ip(meta, 2), client_ip(meta, 9)
    ('10.0.0.2', '1.2.3.4', '10.0.0.2')
    """
    remote = str(meta.get("REMOTE_ADDR") or "unknown")
    if trusted_proxies <= 0:
        return remote
    forwarded = [part.strip() for part in str(meta.get("HTTP_X_FORWARDED_FOR", "")).split(",")]
    forwarded = [part for part in forwarded if part]
    if len(forwarded) < trusted_proxies:
        return remote
    return forwarded[-trusted_proxies]


def trusted_proxies() -> int:
    """``settings.BUCKETCORE_TRUSTED_PROXIES``, checked (an int >= 0)."""
    count = getattr(conf.settings, "BUCKETCORE_TRUSTED_PROXIES", 0)
    if type(count) is not int or count < 0:
        from bucketcore.errors import ConfigurationError

        raise ConfigurationError(
            f"BUCKETCORE_TRUSTED_PROXIES must be an int >= 0 (the reverse proxies "
            f"in front of the app), got {count!r}"
        )
    return count


def by_ip(request: Any) -> str:
    """``ip:<address>``: the client's address (see ``client_ip``)."""
    return bounded_key("ip", client_ip(request.META, trusted_proxies()))


def by_user(request: Any) -> str | None:
    """``user:<pk>`` of ``request.user`` when authenticated, else None."""
    user = getattr(request, "user", None)
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    return bounded_key("user", str(user.pk))


def by_basic_auth(request: Any) -> str | None:
    """``user:<name>``: the HTTP basic-auth user name, or None without one."""
    user = basic_auth_user(request.META.get("HTTP_AUTHORIZATION"))
    return None if user is None else bounded_key("user", user)


def by_header(name: str) -> RequestKeyFunc:
    """A key function for a credential in header ``name`` (stored as a digest).

    >>> by_header("X-Token").__name__
    "by_header('X-Token')"
    """
    meta_name = "HTTP_" + name.upper().replace("-", "_")

    def key(request: Any) -> str | None:
        value = request.META.get(meta_name)
        return api_key(value) if value else None

    key.__name__ = key.__qualname__ = f"by_header({name!r})"
    return key


by_api_key: RequestKeyFunc = by_header("X-API-Key")
"""The ``X-API-Key`` header, as a digest (the store never sees the secret)."""
