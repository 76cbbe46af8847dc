"""The ``BUCKETCORE_*`` settings, read once, and the process's limiters.

=============================  ================================================
``BUCKETCORE_URL``             the store (default: the ``BUCKETCORE_URL``
                               environment variable, else ``memory://``)
``BUCKETCORE_KEY``             the key function (a callable or a dotted path;
                               default ``by_ip``)
``BUCKETCORE_DEFAULT``         a spec for every view without its own limit
                               (the middleware applies it), pool
                               ``BUCKETCORE_DEFAULT_NAME`` (``"default"``)
``BUCKETCORE_ON_STORE_ERROR``  ``"503"`` (fail closed, the default) or ``"pass"``
``BUCKETCORE_SHADOW``          True: decide and report, never deny
``BUCKETCORE_ENABLED``         False: limit nothing (tests); so do
                               ``BUCKETCORE_DISABLED=1`` and ``limiting_disabled()``
``BUCKETCORE_ON_DENIED``       ``f(decision) -> Answer``: a custom 429
``BUCKETCORE_ON_DECISION``     decision hooks (one or a list)
``BUCKETCORE_TRUSTED_PROXIES`` reverse proxies in front of the app (``by_ip``)
=============================  ================================================

A setting changed under ``override_settings`` is read again, and the
limiters are reopened when the URL changes.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import threading
import weakref
from dataclasses import dataclass
from typing import Any

# The module, not its lazy ``settings``: doctest collection must not touch them.
from django import conf
from django.core.signals import setting_changed
from django.utils.module_loading import import_string

from bucketcore.errors import ConfigurationError
from bucketcore.integrations.django.keys import by_ip, trusted_proxies
from bucketcore.integrations.http import Options, Policy
from bucketcore.limiter import AsyncLimiter, Limiter
from bucketcore.store import SCHEMES

__all__ = ["Config", "async_limiter", "config", "limiter"]


def _callable(setting: str, value: object) -> Any:
    if isinstance(value, str):
        try:
            value = import_string(value)
        except ImportError as exc:
            raise ConfigurationError(f"{setting}: cannot import {value!r} ({exc})") from exc
    if not callable(value):
        raise ConfigurationError(f"{setting} must be a function or its dotted path, got {value!r}")
    return value


def _flag(setting: str, default: bool) -> bool:
    value = getattr(conf.settings, setting, default)
    if type(value) is not bool:
        raise ConfigurationError(f"{setting} must be True or False, got {value!r}")
    return value


@dataclass(frozen=True, slots=True)
class Config:
    """What the settings say; ``Config.read()`` checks them all at once."""

    url: str
    options: Options[Any]
    default: Policy[Any] | None

    @classmethod
    def read(cls) -> Config:
        url = getattr(conf.settings, "BUCKETCORE_URL", None) or os.environ.get("BUCKETCORE_URL")
        url = url or "memory://"
        if not isinstance(url, str) or url.partition("://")[0].lower() not in SCHEMES:
            raise ConfigurationError(f"BUCKETCORE_URL is not a store URL: {url!r}")
        hooks = getattr(conf.settings, "BUCKETCORE_ON_DECISION", None)
        hooks_list = [] if hooks is None else hooks if isinstance(hooks, list | tuple) else [hooks]
        on_denied = getattr(conf.settings, "BUCKETCORE_ON_DENIED", None)
        trusted_proxies()  # checked now, not on the first request
        options: Options[Any] = Options(
            key=_callable("BUCKETCORE_KEY", getattr(conf.settings, "BUCKETCORE_KEY", by_ip)),
            fallback=by_ip,
            on_store_error=getattr(conf.settings, "BUCKETCORE_ON_STORE_ERROR", "503"),
            hooks=[_callable("BUCKETCORE_ON_DECISION", hook) for hook in hooks_list],
            shadow=_flag("BUCKETCORE_SHADOW", False),
            enabled=_flag("BUCKETCORE_ENABLED", True),
            on_denied=None if on_denied is None else _callable("BUCKETCORE_ON_DENIED", on_denied),
        )
        spec = getattr(conf.settings, "BUCKETCORE_DEFAULT", None)
        name = getattr(conf.settings, "BUCKETCORE_DEFAULT_NAME", "default")
        default = None if spec is None else Policy(spec, name=name)
        return cls(url, options, default)


_lock = threading.Lock()
_config: Config | None = None
_limiter: Limiter | None = None
_shared_async: AsyncLimiter | None = None  # over _limiter's store (memory, rocksdb)
# One AsyncLimiter per event loop: a Redis connection belongs to the loop
# that opened it (under WSGI each async view runs on a loop of its own).
_async_limiters: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AsyncLimiter] = (
    weakref.WeakKeyDictionary()
)


def config() -> Config:
    """The settings, read (and checked) on first use."""
    global _config
    with _lock:
        if _config is None:
            _config = Config.read()
        return _config


def limiter() -> Limiter:
    """The process's ``Limiter`` on ``BUCKETCORE_URL``."""
    global _limiter
    url = config().url
    with _lock:
        if _limiter is None:
            _limiter = Limiter(url)
        return _limiter


def _has_native_async(url: str) -> bool:
    module = importlib.import_module(SCHEMES[url.partition("://")[0].lower()][0])
    return hasattr(module, "open_async_store")


def async_limiter() -> AsyncLimiter:
    """The ``AsyncLimiter`` of the running loop, on the same store as ``limiter()``.

    memory:// and rocksdb:// are shared with the sync limiter (one process,
    one set of buckets, whether a view is sync or async); Redis gets its
    own asyncio connection.
    """
    url = config().url
    if not _has_native_async(url):
        global _shared_async
        sync = limiter()
        with _lock:
            if _shared_async is None:
                _shared_async = AsyncLimiter(sync.store)
            return _shared_async
    loop = asyncio.get_running_loop()
    with _lock:
        found = _async_limiters.get(loop)
        if found is None:
            found = _async_limiters[loop] = AsyncLimiter(url)
        return found


def reset(**changed: Any) -> None:
    """Forget the settings and the limiters (the next request reads them again)."""
    global _config, _limiter, _shared_async
    setting = changed.get("setting")
    if setting is not None and not str(setting).startswith("BUCKETCORE_"):
        return
    with _lock:
        _config = None
        if _limiter is not None:
            _limiter.close()
        _limiter = _shared_async = None
        _async_limiters.clear()


setting_changed.connect(reset, dispatch_uid="bucketcore.django.config.reset")
