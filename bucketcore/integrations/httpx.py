"""Pace calls to someone else's API with httpx: transports that wait their turn.

``RateLimitedTransport`` (for ``httpx.Client``) and
``AsyncRateLimitedTransport`` (for ``httpx.AsyncClient``) hold the server's
limits. Before each request they wait for its turn (first come, first
served, exact); by default there is one bucket per origin (scheme, host,
port), or ``key`` names a request's bucket. A 429 or 503 answer with
``Retry-After`` (seconds or an HTTP date) empties that bucket until then.
A wait longer than ``timeout`` seconds raises ``RateLimited`` (carrying the
``Decision``) and sends nothing. Answers are returned as they are: a 429
is not retried. The arrival jitter guards are in
``bucketcore.integrations.outbound``.

Works with ``httpx`` 0.28 and its successor ``httpx2`` (the same transport
API), whichever is installed; with both, each request goes through the
default transport of its own client's package, or through ``transport``.

>>> import httpx
>>> def api(request):
...     return httpx.Response(200, text="ok")
>>> transport = RateLimitedTransport("10/s", transport=httpx.MockTransport(api))
>>> with httpx.Client(transport=transport) as client:
...     [client.get("https://api.example.com/").status_code for _ in range(3)]
[200, 200, 200]
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable
from types import ModuleType
from typing import TYPE_CHECKING, Any

from bucketcore._keys import Key
from bucketcore.errors import ConfigurationError
from bucketcore.integrations.http import LimitSpec
from bucketcore.integrations.outbound import (
    Pacing,
    apply,
    apply_async,
    origin,
    take_turn,
    take_turn_async,
)
from bucketcore.limiter import AsyncLimiter, Limiter

__all__ = ["AsyncRateLimitedTransport", "RateLimitedTransport", "client_package", "request_origin"]

_PACKAGES = ("httpx", "httpx2")


def client_package() -> ModuleType:
    """The installed client package: ``httpx``, else ``httpx2``.

    >>> client_package().__name__ in _PACKAGES
    True
    """
    for name in _PACKAGES:
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    raise ConfigurationError(
        "bucketcore.httpx needs httpx or httpx2: pip install 'bucketcore[httpx]'"
    )


if TYPE_CHECKING:
    import httpx

    _Base = httpx.BaseTransport
    _AsyncBase = httpx.AsyncBaseTransport
else:
    _Base = client_package().BaseTransport
    _AsyncBase = client_package().AsyncBaseTransport

KeyFunc = Callable[["httpx.Request"], Key]


def request_origin(request: httpx.Request) -> str:
    """The default bucket of a request: its origin.

    >>> import httpx
    >>> request_origin(httpx.Request("GET", "https://API.example.com/v1/items?page=2"))
    'https://api.example.com:443'
    """
    url = request.url
    return origin(url.scheme, url.host, url.port)


def _package_of(request: httpx.Request) -> str:
    return type(request).__module__.partition(".")[0]


def _checked(limiter: object, kind: type[Limiter | AsyncLimiter], timeout: object) -> float | None:
    if not isinstance(limiter, kind):
        raise ConfigurationError(f"limiter must be a {kind.__name__}, got {limiter!r}")
    if timeout is not None and (
        type(timeout) not in (int, float) or not timeout >= 0  # type: ignore[operator]
    ):
        raise ConfigurationError(f"timeout must be None or seconds >= 0, got {timeout!r}")
    return timeout  # type: ignore[return-value]


class RateLimitedTransport(_Base):
    """An httpx transport that paces requests to the server's ``limits``.

    ``limits``: ``"10/s"``, ``"10/s; 1000/day"``, a ``Limit`` or Limits, as
    the server states them. ``limiter``: where the buckets live (default:
    a ``memory://`` limiter of its own; a shared Redis one paces several
    processes together). ``key``: a function of the request naming its
    bucket (default: ``request_origin``). ``transport``: the transport that
    sends (default: the client package's own ``HTTPTransport``).
    ``timeout``: the longest wait for a turn, in seconds (default: no limit).

    >>> import httpx
    >>> transport = RateLimitedTransport("2/minute", transport=httpx.MockTransport(
    ...     lambda request: httpx.Response(200)), timeout=0.5)
    >>> client = httpx.Client(transport=transport)
    >>> client.get("https://api.example.com/").status_code
    200
    >>> client.get("https://api.example.com/")
    Traceback (most recent call last):
    ...
    bucketcore.errors.RateLimited: rate limited by '2/60s burst 1': retry in 30 s
    """

    def __init__(
        self,
        limits: LimitSpec,
        *,
        limiter: Limiter | None = None,
        key: KeyFunc | None = None,
        transport: httpx.BaseTransport | None = None,
        timeout: float | None = None,
    ) -> None:
        self.pacing = Pacing(limits)
        self._owns_limiter = limiter is None
        self._limiter = Limiter() if limiter is None else limiter
        self._timeout = _checked(self._limiter, Limiter, timeout)
        self._key: KeyFunc = request_origin if key is None else key
        self._transport = transport
        self._defaults: dict[str, httpx.BaseTransport] = {}
        self._lock = threading.Lock()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        key = self._key(request)
        sender = self._sender(request)  # made first: its set-up (TLS context) is slow
        take_turn(self._limiter, key, self.pacing.limits, self._timeout)
        clock = self._limiter.clock  # the limiter's: a test drives both with one
        sent = clock()
        response = sender.handle_request(request)
        received = clock()
        retry_after = response.headers.get("Retry-After")
        steps = self.pacing.after(key, sent, received, response.status_code, retry_after)
        if steps:
            apply(self._limiter, key, steps)
        return response

    def _sender(self, request: httpx.Request) -> httpx.BaseTransport:
        if self._transport is not None:
            return self._transport
        package = _package_of(request)
        with self._lock:
            sender = self._defaults.get(package)
            if sender is None:
                sender = self._defaults[package] = _default_transport(package)
            return sender

    def close(self) -> None:
        for sender in [self._transport, *self._defaults.values()]:
            if sender is not None:
                sender.close()
        if self._owns_limiter:
            self._limiter.close()


class AsyncRateLimitedTransport(_AsyncBase):
    """``RateLimitedTransport`` for ``httpx.AsyncClient``, over an ``AsyncLimiter``.

    >>> import asyncio, httpx
    >>> async def main():
    ...     transport = AsyncRateLimitedTransport(
    ...         "5/s", transport=httpx.MockTransport(lambda request: httpx.Response(204)))
    ...     async with httpx.AsyncClient(transport=transport) as client:
    ...         return (await client.get("https://api.example.com/")).status_code
    >>> asyncio.run(main())
    204
    """

    def __init__(
        self,
        limits: LimitSpec,
        *,
        limiter: AsyncLimiter | None = None,
        key: KeyFunc | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float | None = None,
    ) -> None:
        self.pacing = Pacing(limits)
        self._owns_limiter = limiter is None
        self._limiter = AsyncLimiter() if limiter is None else limiter
        self._timeout = _checked(self._limiter, AsyncLimiter, timeout)
        self._key: KeyFunc = request_origin if key is None else key
        self._transport = transport
        self._defaults: dict[str, httpx.AsyncBaseTransport] = {}

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        key = self._key(request)
        sender = self._sender(request)  # made first: its set-up (TLS context) is slow
        await take_turn_async(self._limiter, key, self.pacing.limits, self._timeout)
        clock = self._limiter.clock  # the limiter's: a test drives both with one
        sent = clock()
        response = await sender.handle_async_request(request)
        received = clock()
        retry_after = response.headers.get("Retry-After")
        steps = self.pacing.after(key, sent, received, response.status_code, retry_after)
        if steps:
            await apply_async(self._limiter, key, steps)
        return response

    def _sender(self, request: httpx.Request) -> httpx.AsyncBaseTransport:
        if self._transport is not None:
            return self._transport
        package = _package_of(request)
        sender = self._defaults.get(package)
        if sender is None:  # no await in between: one event loop cannot race here
            sender = self._defaults[package] = _default_transport(package, asynchronous=True)
        return sender

    async def aclose(self) -> None:
        for sender in [self._transport, *self._defaults.values()]:
            if sender is not None:
                await sender.aclose()
        if self._owns_limiter:
            await self._limiter.close()


def _default_transport(package: str, *, asynchronous: bool = False) -> Any:
    """The client package's own transport, for a request built by that package."""
    module = importlib.import_module(package if package in _PACKAGES else client_package().__name__)
    return module.AsyncHTTPTransport() if asynchronous else module.HTTPTransport()
