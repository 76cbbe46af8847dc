"""``redis+sentinel://``: the master some sentinels name, followed across failovers.

``redis+sentinel://[[user]:password@]host[:port][,host[:port]...]/service[/db]``
(``rediss+sentinel://`` for TLS to the master). The user and password are
the master's; the sentinels' own are the options ``sentinel_username`` and
``sentinel_password``, their socket timeout ``sentinel_timeout`` (default:
``timeout``). The other options are those of ``redis://``.

After a failover no decision may be made on a demoted master: a plain
redis-py Sentinel client kept writing to the old master for 11-15 s and
granted 77 of 50, because connections already open stay on the old
master. So the store follows the sentinels' ``+switch-master``
announcements: ``SwitchWatch`` subscribes on one sentinel at the first
call and, before every call, reads what arrived without waiting (no
thread); a switch closes every connection, so the next one asks the
sentinels for the new master (where NOSCRIPT loads the script). A
connection still talking to a master that was demoted meanwhile gets
READONLY, which redis-py turns into a connection error: that call is
``StoreUnavailable``, never re-sent.

>>> from urllib.parse import urlsplit
>>> read_sentinel_url(urlsplit("redis+sentinel://:pw@a:26379,b/mymaster/2"))
([('a', 26379), ('b', 26379)], 'mymaster', 2, None, 'pw')
"""

from __future__ import annotations

import threading
import time
from typing import Any
from urllib.parse import SplitResult, unquote

from bucketcore._options import seconds
from bucketcore.errors import ConfigurationError

from .errors import ERRORS
from .options import Settings, client_kwargs

__all__ = ["AsyncSwitchWatch", "SwitchWatch", "is_switch", "read_sentinel_url", "sentinel_parts"]

SWITCH_CHANNEL = "+switch-master"
_DEFAULT_PORT = 26379
_RESUBSCRIBE_NS = 1_000_000_000  # with every sentinel down, try again once a second, not per call


def read_sentinel_url(
    url: SplitResult,
) -> tuple[list[tuple[str, int]], str, int | None, str | None, str | None]:
    """The sentinels, the service, the database, and the master's user and password.

    Errors never repeat the password.

    >>> from urllib.parse import urlsplit
    >>> read_sentinel_url(urlsplit("redis+sentinel://s1,s2:1/"))
    Traceback (most recent call last):
    ...
    bucketcore.errors.ConfigurationError: a redis+sentinel:// URL needs /service[/db] ...
    """
    userinfo, _, hosts = url.netloc.rpartition("@")
    user = password = None
    if userinfo:
        name, colon, secret = userinfo.partition(":")
        user = unquote(name) or None
        password = unquote(secret) if colon else None
    where = f"{url.scheme}://{hosts}{url.path}"
    sentinels = []
    for part in hosts.split(","):
        if part.startswith("["):  # [IPv6]:port
            host, _, after = part[1:].partition("]")
            colon, port = after[:1], after[1:]
        elif part.count(":") == 1:
            host, colon, port = part.partition(":")
        else:
            host, colon, port = part, "", ""
        if not host:
            raise ConfigurationError(f"a sentinel address is empty or malformed in {where!r}")
        if colon and not port.isdigit():
            raise ConfigurationError(f"a sentinel port must be a number in {where!r}")
        sentinels.append((host, int(port) if colon else _DEFAULT_PORT))
    path = [piece for piece in url.path.split("/")[1:]]
    if not path or not path[0] or len(path) > 2 or (len(path) == 2 and not path[1].isdigit()):
        raise ConfigurationError(
            f"a redis+sentinel:// URL needs /service[/db] after the sentinels, got {where!r}"
        )
    db = int(path[1]) if len(path) == 2 else None
    return sentinels, unquote(path[0]), db, user, password


def sentinel_parts(
    url: SplitResult, settings: Settings
) -> tuple[list[tuple[str, int]], str, dict[str, Any], dict[str, Any]]:
    """The sentinels, the service, the sentinels' kwargs and the master's kwargs.

    ``settings.rest`` (the client options) is used up.

    >>> from urllib.parse import urlsplit
    >>> settings = Settings({"sentinel_password": "s", "timeout": "0.5"})
    >>> _, service, to_sentinels, to_master = sentinel_parts(
    ...     urlsplit("redis+sentinel://u:p@h/svc/1"), settings)
    >>> service, to_sentinels["password"], to_sentinels["socket_timeout"], to_master["db"]
    ('svc', 's', 0.5, 1)
    """
    sentinels, service, db, user, password = read_sentinel_url(url)
    options = dict(settings.rest)
    settings.rest = {}
    to_sentinels: dict[str, Any] = {}
    for name in ("sentinel_username", "sentinel_password"):
        if name in options:
            value = options.pop(name)
            if type(value) is not str:
                raise ConfigurationError(f"option {name} must be a str")
            to_sentinels[name.removeprefix("sentinel_")] = value
    sentinel_timeout = options.pop("sentinel_timeout", None)
    if db is not None:
        if "db" in options:
            raise ConfigurationError("the database is given in the URL and as option db")
        options["db"] = db
    to_master = client_kwargs(url.scheme.lower().removesuffix("+sentinel"), options)
    to_master.setdefault("db", 0)
    if user is not None:
        to_master["username"] = user
    if password is not None:
        to_master["password"] = password
    if url.scheme.lower().startswith("rediss"):
        to_master["ssl"] = True
    timeout = to_master["socket_timeout"]
    to_sentinels["socket_timeout"] = (
        seconds("sentinel_timeout", sentinel_timeout) if sentinel_timeout is not None else timeout
    )
    to_sentinels["socket_connect_timeout"] = to_sentinels["socket_timeout"]
    return sentinels, service, to_sentinels, to_master


def is_switch(message: Any, service: str) -> bool:
    """Whether a pub/sub message announces a new master for ``service``.

    >>> is_switch({"type": "message", "data": b"svc 127.0.0.1 1 127.0.0.1 2"}, "svc")
    True
    >>> is_switch({"type": "message", "data": b"other 127.0.0.1 1 127.0.0.1 2"}, "svc")
    False
    """
    if not isinstance(message, dict) or message.get("type") != "message":
        return False
    data = message.get("data")
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else str(data)
    return text.split(" ", 1)[0] == service


class SwitchWatch:
    """Hears ``+switch-master`` for one service on one of the sentinels, never blocking.

    ``switched()`` is True when the master may have changed since it was
    last asked: a switch was announced, or the subscription was (re)made
    (a switch may have been missed meanwhile).
    """

    def __init__(self, sentinel_manager: Any, service: str) -> None:
        self._sentinels: list[Any] = list(sentinel_manager.sentinels)
        self._service = service
        self._pubsub: Any = None
        self._next = 0
        self._retry_at = 0
        self._lock = threading.Lock()

    def switched(self) -> bool:
        if not self._lock.acquire(blocking=False):
            return False  # another thread is reading the announcements
        try:
            if self._pubsub is None:
                return self._subscribe()
            switched = False
            while True:
                message = self._pubsub.get_message(timeout=0.0)
                if message is None:
                    return switched
                switched = switched or is_switch(message, self._service)
        except ERRORS:
            self._drop()
            return True
        finally:
            self._lock.release()

    def close(self) -> None:
        with self._lock:
            self._drop()

    def _subscribe(self) -> bool:
        """Subscribe on the next sentinel; True once subscribed (a switch may have been missed)."""
        if time.monotonic_ns() < self._retry_at:
            return False
        sentinel = self._sentinels[self._next % len(self._sentinels)]
        self._next += 1
        pubsub = sentinel.pubsub(ignore_subscribe_messages=True)
        try:
            pubsub.subscribe(SWITCH_CHANNEL)
        except ERRORS:
            pubsub.close()
            self._retry_at = time.monotonic_ns() + _RESUBSCRIBE_NS
            return False
        self._pubsub = pubsub
        return True

    def _drop(self) -> None:
        if self._pubsub is not None:
            self._pubsub.close()
            self._pubsub = None


class AsyncSwitchWatch:
    """``SwitchWatch`` for ``redis.asyncio`` (one task reads at a time)."""

    def __init__(self, sentinel_manager: Any, service: str) -> None:
        self._sentinels: list[Any] = list(sentinel_manager.sentinels)
        self._service = service
        self._pubsub: Any = None
        self._next = 0
        self._retry_at = 0
        self._busy = False

    async def switched(self) -> bool:
        if self._busy:
            return False
        self._busy = True
        try:
            if self._pubsub is None:
                return await self._subscribe()
            switched = False
            while True:
                message = await self._pubsub.get_message(timeout=0.0)
                if message is None:
                    return switched
                switched = switched or is_switch(message, self._service)
        except ERRORS:
            await self._drop()
            return True
        finally:
            self._busy = False

    async def close(self) -> None:
        await self._drop()

    async def _subscribe(self) -> bool:
        if time.monotonic_ns() < self._retry_at:
            return False
        sentinel = self._sentinels[self._next % len(self._sentinels)]
        self._next += 1
        pubsub = sentinel.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(SWITCH_CHANNEL)
        except ERRORS:
            await pubsub.aclose()
            self._retry_at = time.monotonic_ns() + _RESUBSCRIBE_NS
            return False
        self._pubsub = pubsub
        return True

    async def _drop(self) -> None:
        if self._pubsub is not None:
            pubsub, self._pubsub = self._pubsub, None
            await pubsub.aclose()
