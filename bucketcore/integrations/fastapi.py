"""A FastAPI dependency: ``Depends(RateLimit("7/30s", key=by_user))``.

Use it on a route, a router or the app (``dependencies=[...]``), or as a
parameter to read the ``Decision``. Allowed responses carry the rate-limit
headers; a denial is an ``HTTPException`` 429 with ``Retry-After`` (its
``detail`` is the JSON body the other integrations send). The limiter is an
``AsyncLimiter`` (the event loop never blocks): ``limiter=`` or one shared
limiter per ``BUCKETCORE_URL`` (default ``memory://``), so dependencies that
name the same pool share its buckets. Pool conflicts and a cost above a
burst are refused when the dependency is made, at import.

``spec`` may be a function of the ``Request`` (a user's plan); key
functions take the ``Request`` too: ``by_ip`` (the default), ``by_user``,
``by_api_key``, ``by_header(name)``.

>>> from fastapi import Depends, FastAPI
>>> app = FastAPI()
>>> @app.get("/pizza", dependencies=[Depends(RateLimit("7/30s", name="doc-pizza"))])
... async def pizza():
...     return {"food": "pizza"}
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable

from fastapi import HTTPException, Request, Response

from bucketcore.decision import Decision
from bucketcore.errors import ConfigurationError
from bucketcore.integrations import asgi
from bucketcore.integrations.hooks import Hooks, hooks_tuple
from bucketcore.integrations.http import (
    DeniedHook,
    Options,
    Policy,
    PoolRegistry,
    RequestSpec,
    check_on_store_error,
    decide_request_async,
)
from bucketcore.limiter import AsyncLimiter

__all__ = ["RateLimit", "RequestKeyFunc", "by_api_key", "by_header", "by_ip", "by_user"]

RequestKeyFunc = Callable[[Request], str | None]

# One pool name means one pool: every RateLimit in the process shares these.
_pools = PoolRegistry()
_limiters: dict[str, AsyncLimiter] = {}


def by_ip(request: Request) -> str:
    """The client address the server reports (``request.client``)."""
    return asgi.by_ip(request.scope)


def by_user(request: Request) -> str | None:
    """The HTTP basic-auth user name, or None without credentials."""
    return asgi.by_user(request.scope)


def by_header(name: str) -> RequestKeyFunc:
    """A key function for a credential in header ``name`` (stored as a digest).

    >>> by_header("X-Token").__name__
    "by_header('X-Token')"
    """
    of_scope = asgi.by_header(name)

    def key(request: Request) -> str | None:
        return of_scope(request.scope)

    key.__name__ = key.__qualname__ = f"by_header({name!r})"
    return key


by_api_key: RequestKeyFunc = by_header("X-API-Key")
"""The ``X-API-Key`` header, as a digest (the store never sees the secret)."""


def _shared_limiter() -> AsyncLimiter:
    url = os.environ.get("BUCKETCORE_URL") or "memory://"
    if url not in _limiters:
        _limiters[url] = AsyncLimiter(url)
    return _limiters[url]


class RateLimit:
    """A dependency holding a route (or router) to ``spec``.

    Options as in ``bucketcore.asgi``: ``name`` (a shared pool), ``key``,
    ``cost`` (an int or a function of the request), ``exempt_when``,
    ``on_store_error`` (``"503"`` or ``"pass"``), ``on_decision`` hooks,
    ``shadow``, ``enabled`` and ``on_denied``. Awaited, it returns the
    ``Decision`` (None when nothing was decided).

    >>> RateLimit("5/s", cost=6)
    Traceback (most recent call last):
    ...
    bucketcore.errors.ConfigurationError: cost 6 is above the burst 5 of '5/1s': every request ...
    """

    def __init__(
        self,
        spec: RequestSpec[Request],
        *,
        name: str | None = None,
        key: RequestKeyFunc = by_ip,
        cost: int | Callable[[Request], int] = 1,
        exempt_when: Callable[[Request], bool] | None = None,
        limiter: AsyncLimiter | None = None,
        on_store_error: str = "503",
        on_decision: Hooks = None,
        shadow: bool = False,
        enabled: bool = True,
        on_denied: DeniedHook | None = None,
    ) -> None:
        if limiter is not None and not isinstance(limiter, AsyncLimiter):
            raise ConfigurationError(f"limiter must be an AsyncLimiter, got {limiter!r}")
        self._policy: Policy[Request] = Policy(spec, name=name, cost=cost, exempt_when=exempt_when)
        self._options: Options[Request] = Options(
            key=key,
            fallback=by_ip,
            on_store_error=check_on_store_error(on_store_error),
            hooks=hooks_tuple(on_decision),
            shadow=shadow,
            enabled=enabled,
            on_denied=on_denied,
        )
        self._limiter = limiter
        _pools.register(self._policy.limits or (), f"in RateLimit({spec!r})")

    @property
    def limiter(self) -> AsyncLimiter:
        """The limiter deciding for this dependency."""
        return self._limiter if self._limiter is not None else _shared_limiter()

    def __repr__(self) -> str:
        return f"RateLimit({self._policy.spec!r}, name={self._policy.name!r})"

    async def __call__(self, request: Request, response: Response) -> Decision | None:
        route = request.scope.get("route")
        source = str(getattr(route, "path", None) or request.url.path)
        verdict = await decide_request_async(
            self.limiter, [self._policy], request, self._options, source=source
        )
        if verdict.answer is not None:
            answer = verdict.answer
            headers = {k: v for k, v in answer.headers.items() if k.lower() != "content-type"}
            try:
                detail: object = json.loads(answer.body)
            except ValueError:
                detail = answer.body.decode("utf-8", "replace")
            raise HTTPException(answer.status, detail=detail, headers=headers)
        for header, value in verdict.headers.items():
            response.headers.setdefault(header, value)
        decisions = verdict.decisions
        return decisions[0] if decisions else None
