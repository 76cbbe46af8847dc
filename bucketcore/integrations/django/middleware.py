"""``RateLimitMiddleware``: the default limit, and the headers on limited responses.

Add ``"bucketcore.django.RateLimitMiddleware"`` to ``MIDDLEWARE``. It holds
every view without its own ``@limit`` (and not ``@exempt``) to
``settings.BUCKETCORE_DEFAULT``, adds the rate-limit headers a DRF
``RateLimitThrottle`` decided to the response, and turns a ``RateLimited``
raised by a view into the same 429. It is sync and async capable: under
ASGI it awaits an ``AsyncLimiter`` and never blocks the loop.

Made when the server loads its middleware, it checks the settings and the
URLconf's limits (the system check's own code), so a gunicorn worker with
a bad configuration refuses to start rather than serve unlimited.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest, HttpResponseBase

from bucketcore.errors import RateLimited
from bucketcore.integrations.django.config import async_limiter, config, limiter
from bucketcore.integrations.django.views import (
    HEADERS,
    is_exempt,
    own_policies,
    response_of,
    with_headers,
)
from bucketcore.integrations.http import Policy, decide_request, decide_request_async, denied

__all__ = ["RateLimitMiddleware"]

GetResponse = Callable[[HttpRequest], Any]


class RateLimitMiddleware:
    """Django middleware (WSGI and ASGI) around the shared decision step."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: GetResponse) -> None:
        from bucketcore.integrations.django.checks import configuration_errors

        errors = [error for error in configuration_errors() if error.is_serious()]
        if errors:
            raise ImproperlyConfigured("; ".join(f"{e.id}: {e.msg}" for e in errors))
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)
            # Django calls process_view in the middleware's own mode.
            self.process_view = self._process_view_async  # type: ignore[method-assign]

    def __call__(self, request: HttpRequest) -> Any:
        if self.is_async:
            return self._call_async(request)
        return _finished(request, self.get_response(request))

    async def _call_async(self, request: HttpRequest) -> HttpResponseBase:
        get_response: Callable[[HttpRequest], Awaitable[HttpResponseBase]] = self.get_response
        return _finished(request, await get_response(request))

    def process_view(
        self, request: HttpRequest, view: Any, args: Any, kwargs: Any
    ) -> HttpResponseBase | None:
        policies = _default_for(request, view)
        if not policies:
            return None
        options = config().options
        result = decide_request(limiter(), policies, request, options, source=request.path)
        return _answered(request, result.answer, result.headers)

    async def _process_view_async(
        self, request: HttpRequest, view: Any, args: Any, kwargs: Any
    ) -> HttpResponseBase | None:
        policies = _default_for(request, view)
        if not policies:
            return None
        result = await decide_request_async(
            async_limiter(), policies, request, config().options, source=request.path
        )
        return _answered(request, result.answer, result.headers)

    def process_exception(self, request: HttpRequest, exception: Exception) -> Any:
        if isinstance(exception, RateLimited):
            return response_of(denied(exception.decision))
        return None


def _default_for(request: HttpRequest, view: Any) -> tuple[Policy[Any], ...]:
    default = config().default
    if default is None or is_exempt(view, request.method):
        return ()
    if own_policies(view, request.method):
        return ()
    return (default,)


def _answered(
    request: HttpRequest, answer: Any, headers: dict[str, str]
) -> HttpResponseBase | None:
    if answer is not None:
        return response_of(answer)
    setattr(request, HEADERS, headers)
    return None


def _finished(request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
    headers: dict[str, str] | None = getattr(request, HEADERS, None)
    return with_headers(response, headers) if headers else response
