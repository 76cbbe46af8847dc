"""Options: what a URL or keywords may say, validated into settings and client kwargs.

Store options (``RedisStore`` takes these with your own client): ``prefix``
(default ``bucketcore:``, no braces), ``on_error`` (``raise`` | ``allow`` |
``deny`` | ``local``), ``deny_cache`` (default true), ``deny_cache_size``
(keys, default 10000), ``breaker_cooldown`` (seconds before the circuit
breaker's first probe, default 0.25; 0 turns the breaker off),
``breaker_max_cooldown`` (default 5.0: failed probes double the wait up
to it) and ``on_breaker`` (a callable, keyword only: ``breaker.BreakerHook``).
Client options (only when the store makes the client from a URL):
``timeout`` (seconds per command, default 1.0), ``connect_timeout``
(default ``timeout``), ``connect_retries`` (default 1), ``max_connections``,
``db`` and, for ``rediss://``, ``ssl_ca_certs``, ``ssl_certfile``,
``ssl_keyfile``, ``ssl_cert_reqs`` (``required`` | ``optional`` | ``none``)
and ``ssl_check_hostname``.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import SplitResult, urlunsplit

from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from bucketcore._options import count, flag, seconds
from bucketcore._urls import redacted
from bucketcore.errors import ConfigurationError, shown
from bucketcore.store import Clock, split_options

from .breaker import BreakerHook

__all__ = ["Settings", "client_kwargs", "read_settings", "read_url"]

_ON_ERROR = ("raise", "allow", "deny", "local")
_SSL_CERT_REQS = ("required", "optional", "none")
_DEFAULT_PREFIX = "bucketcore:"


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


class Settings:
    """The store's own options, validated; the rest (client options) kept in ``rest``.

    >>> settings = Settings({"prefix": "app:", "deny_cache": "off", "timeout": "2"})
    >>> settings.prefix, settings.on_error, settings.deny_cache, settings.rest
    (b'app:', 'raise', False, {'timeout': '2'})
    >>> settings.breaker_cooldown, settings.breaker_max_cooldown
    (0.25, 5.0)
    """

    __slots__ = (
        "breaker_cooldown",
        "breaker_max_cooldown",
        "deny_cache",
        "deny_cache_size",
        "on_breaker",
        "on_error",
        "prefix",
        "rest",
    )

    def __init__(self, options: dict[str, object]) -> None:
        options = dict(options)
        self.prefix = _prefix(options.pop("prefix", _DEFAULT_PREFIX))
        on_error = options.pop("on_error", "raise")
        if on_error not in _ON_ERROR:
            raise ConfigurationError(
                f"option on_error must be one of {_ON_ERROR}, got {on_error!r}"
            )
        self.on_error = str(on_error)
        self.deny_cache = flag("deny_cache", options.pop("deny_cache", True))
        self.deny_cache_size = count(
            "deny_cache_size", options.pop("deny_cache_size", 10_000), minimum=1
        )
        self.breaker_cooldown = seconds(
            "breaker_cooldown", options.pop("breaker_cooldown", 0.25), allow_zero=True
        )
        self.breaker_max_cooldown = seconds(
            "breaker_max_cooldown",
            options.pop("breaker_max_cooldown", max(5.0, self.breaker_cooldown)),
            allow_zero=True,
        )
        if self.breaker_max_cooldown < self.breaker_cooldown:
            raise ConfigurationError(
                "option breaker_max_cooldown must be >= breaker_cooldown "
                f"({self.breaker_cooldown:g}), got {self.breaker_max_cooldown:g}"
            )
        on_breaker = options.pop("on_breaker", None)
        if on_breaker is not None and not callable(on_breaker):
            raise ConfigurationError(
                f"option on_breaker must be a callable (state, error), got {shown(on_breaker)}"
            )
        self.on_breaker: BreakerHook | None = on_breaker
        self.rest = options

    def store_options(self) -> dict[str, object]:
        """The store's options again, as ``RedisStore`` takes them."""
        return {
            "prefix": self.prefix,
            "on_error": self.on_error,
            "deny_cache": self.deny_cache,
            "deny_cache_size": self.deny_cache_size,
            "breaker_cooldown": self.breaker_cooldown,
            "breaker_max_cooldown": self.breaker_max_cooldown,
            "on_breaker": self.on_breaker,
        }

    def only_store_options(self, owner: str) -> Settings:
        """These settings, if nothing is left for a client (the user brought their own)."""
        if self.rest:
            raise ConfigurationError(
                f"unknown option(s) for {owner}: {', '.join(sorted(self.rest))} "
                "(connection options belong to your client)"
            )
        return self


def client_kwargs(scheme: str, options: dict[str, object]) -> dict[str, Any]:
    """redis-py keyword arguments for a client this store creates and owns.

    >>> kwargs = client_kwargs("redis", {"timeout": "0.5", "db": "2"})
    >>> kwargs["socket_timeout"], kwargs["socket_connect_timeout"], kwargs["db"]
    (0.5, 0.5, 2)
    >>> client_kwargs("redis+cluster", {"db": 1})
    Traceback (most recent call last):
    ...
    bucketcore.errors.ConfigurationError: a Redis Cluster has only database 0: drop option db
    """
    options = dict(options)
    timeout = seconds("timeout", options.pop("timeout", 1.0))
    kwargs: dict[str, Any] = {
        "socket_timeout": timeout,
        "socket_connect_timeout": seconds(
            "connect_timeout", options.pop("connect_timeout", timeout)
        ),
    }
    retries = count("connect_retries", options.pop("connect_retries", 1), minimum=0)
    if "max_connections" in options:
        kwargs["max_connections"] = count(
            "max_connections", options.pop("max_connections"), minimum=1
        )
    if "db" in options:
        if scheme.endswith("+cluster"):
            raise ConfigurationError("a Redis Cluster has only database 0: drop option db")
        kwargs["db"] = count("db", options.pop("db"), minimum=0)
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
        kwargs["ssl_check_hostname"] = flag("ssl_check_hostname", options.pop("ssl_check_hostname"))
    if options:
        raise ConfigurationError(f"unknown option(s) for Redis: {', '.join(sorted(options))}")
    if not scheme.endswith("+cluster"):
        # Only connection set-up is ever retried: the decision command is sent
        # on a connection taken from the pool, outside redis-py's Retry.
        kwargs["retry"] = Retry(ExponentialBackoff(cap=0.1, base=0.01), retries)
    return kwargs


# valkey:// and valkeys:// are Valkey's names for the same protocol.
_ALIASES = {"valkey": "redis", "valkeys": "rediss"}
_DB_PATH = re.compile(r"/?(?P<db>[0-9]{1,5})?/?")


def _base_url(url: SplitResult) -> tuple[str, str]:
    """The scheme and the URL redis-py is given, after checking host, port and path."""
    scheme = _ALIASES.get(url.scheme.lower(), url.scheme.lower())
    shown = redacted(url)
    if scheme == "unix":
        if not url.path or url.hostname or url.port is not None:
            raise ConfigurationError(f"a unix:// URL is unix:///path/to/redis.sock: {shown!r}")
        return scheme, f"unix://{url.netloc}{url.path}"  # urlunsplit drops an empty '//'
    if not url.hostname:
        raise ConfigurationError(f"a Redis URL needs a host: {shown!r}")
    if url.port is not None and not 1 <= url.port <= 65535:
        raise ConfigurationError(f"a Redis URL's port is 1 to 65535: {shown!r}")
    if _DB_PATH.fullmatch(url.path) is None:
        raise ConfigurationError(f"a Redis URL's path is a database number, as /0: {shown!r}")
    plain = scheme.removesuffix("+cluster")
    return scheme, urlunsplit((plain, url.netloc, url.path, "", ""))


def read_url(
    url: SplitResult, options: dict[str, object], clock: Clock | None
) -> tuple[str, str, dict[str, Any], Settings]:
    """The scheme, the client's URL, its kwargs and the store's settings.

    >>> from urllib.parse import urlsplit
    >>> scheme, base, kwargs, settings = read_url(
    ...     urlsplit("redis+cluster://h:7000?prefix=app:&timeout=2"), {}, None)
    >>> scheme, base, kwargs["socket_timeout"], settings.prefix
    ('redis+cluster', 'redis://h:7000', 2.0, b'app:')
    """
    scheme, base = _base_url(url)
    settings = read_settings(url, options, clock)
    kwargs = client_kwargs(scheme, settings.rest)
    settings.rest = {}
    return scheme, base, kwargs, settings


def read_settings(url: SplitResult, options: dict[str, object], clock: Clock | None) -> Settings:
    """The store's settings from a URL's query and keywords (client options left in ``rest``).

    >>> from urllib.parse import urlsplit
    >>> read_settings(urlsplit("redis+sentinel://h/svc?on_error=local"), {}, None).on_error
    'local'
    """
    if clock is not None:
        raise ConfigurationError(
            "Redis decides with the server's clock (TIME): a clock cannot be given"
        )
    return Settings(split_options(url, options))
