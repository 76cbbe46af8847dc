"""Pace calls to someone else's API with requests: an adapter that waits its turn.

``RateLimitedAdapter`` is mounted on a ``requests.Session`` for a URL
prefix and behaves as ``bucketcore.httpx``'s transports do: before each
request it waits for its turn (first come, first served, exact), one
bucket per origin unless ``key`` names it; a 429 or 503 with
``Retry-After`` empties the bucket until then; a wait longer than
``timeout`` raises ``RateLimited`` and sends nothing.

>>> import requests
>>> session = requests.Session()
>>> session.mount("https://", RateLimitedAdapter("5/s", timeout=10))
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable
from typing import Any

import requests
import requests.adapters

from bucketcore._keys import Key
from bucketcore.errors import ConfigurationError
from bucketcore.integrations.http import LimitSpec
from bucketcore.integrations.outbound import Pacing, apply, origin, take_turn
from bucketcore.limiter import Limiter

__all__ = ["RateLimitedAdapter", "request_origin"]

KeyFunc = Callable[[requests.PreparedRequest], Key]


def request_origin(request: requests.PreparedRequest) -> str:
    """The default bucket of a request: its origin (scheme, host, port).

    >>> request_origin(requests.Request("GET", "http://Example.com/a?b=c").prepare())
    'http://example.com:80'
    """
    parts = urllib.parse.urlsplit(request.url or "")
    return origin(parts.scheme, parts.hostname or "", parts.port)


class RateLimitedAdapter(requests.adapters.HTTPAdapter):
    """A ``requests`` transport adapter that paces requests to the server's ``limits``.

    ``limits``, ``limiter``, ``key`` and ``timeout`` as for
    ``bucketcore.httpx.RateLimitedTransport``; any other keyword goes to
    ``HTTPAdapter`` (``pool_connections``, ``max_retries``, ...).

    >>> adapter = RateLimitedAdapter("10/s; 1000/day", key=lambda request: "one-api")
    >>> [limit.burst for limit in adapter.pacing.limits]
    [9, 999]
    """

    def __init__(
        self,
        limits: LimitSpec,
        *,
        limiter: Limiter | None = None,
        key: KeyFunc | None = None,
        timeout: float | None = None,
        **adapter_options: Any,
    ) -> None:
        if limiter is not None and not isinstance(limiter, Limiter):
            raise ConfigurationError(f"limiter must be a Limiter, got {limiter!r}")
        if timeout is not None and (type(timeout) not in (int, float) or not timeout >= 0):
            raise ConfigurationError(f"timeout must be None or seconds >= 0, got {timeout!r}")
        self.pacing = Pacing(limits)
        self._owns_limiter = limiter is None
        self._limiter = Limiter() if limiter is None else limiter
        self._timeout = timeout
        self._key: KeyFunc = request_origin if key is None else key
        super().__init__(**adapter_options)

    def send(
        self, request: requests.PreparedRequest, *args: Any, **kwargs: Any
    ) -> requests.Response:
        """Wait for the request's turn, send it, and obey the answer's ``Retry-After``."""
        key = self._key(request)
        take_turn(self._limiter, key, self.pacing.limits, self._timeout)
        clock = self._limiter.clock  # the limiter's: a test drives both with one
        sent = clock()
        response = super().send(request, *args, **kwargs)
        received = clock()
        retry_after = response.headers.get("Retry-After")
        steps = self.pacing.after(key, sent, received, response.status_code, retry_after)
        if steps:
            apply(self._limiter, key, steps)
        return response

    def close(self) -> None:
        super().close()
        if self._owns_limiter:
            self._limiter.close()
