"""``@limit`` and ``@exempt`` for Django views, sync or async.

``@limit("7/30s", name="general", key=by_basic_auth)`` checks the request
before the view runs, through the shared decision step: a denial is the
429 every integration sends (``Retry-After``, the RateLimit headers, a
JSON body), an allowed response gets the RateLimit headers. An ``async
def`` view awaits an ``AsyncLimiter``; a class-based view takes the
decorator through ``method_decorator``. Several specs in one ``@limit``,
or several ``@limit`` on one view, are decided all or nothing.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from asgiref.sync import iscoroutinefunction
from django.http import HttpRequest, HttpResponse, HttpResponseBase

from bucketcore.errors import ConfigurationError
from bucketcore.integrations.django.config import async_limiter, config, limiter
from bucketcore.integrations.http import (
    Answer,
    KeyFunction,
    Policy,
    RequestSpec,
    decide_request,
    decide_request_async,
    limits_from,
    methods_from,
)
from bucketcore.limit import Limit

__all__ = ["exempt", "is_exempt", "limit", "own_policies", "response_of", "with_headers"]

View = TypeVar("View", bound=Callable[..., Any])

POLICIES = "__bucketcore_policies__"
EXEMPT = "__bucketcore_exempt__"
_ORIGINAL = "__bucketcore_view__"
HEADERS = "_bucketcore_headers"  # on the HttpRequest: what the middleware adds


def response_of(answer: Answer) -> HttpResponse:
    """The Django response for an answer of the decision step (a 429, a 503)."""
    return HttpResponse(answer.body, status=answer.status, headers=answer.headers)


def with_headers(response: HttpResponseBase, headers: dict[str, str]) -> HttpResponseBase:
    """Add the rate-limit ``headers`` the view did not set itself."""
    for name, value in headers.items():
        response.headers.setdefault(name, value)
    return response


def _methods_filter(
    methods: str | Iterable[str] | None, exempt_when: Callable[[Any], bool] | None
) -> Callable[[Any], bool] | None:
    allowed = methods_from(methods)
    if allowed is None:
        return exempt_when

    def exempt_unless_method(request: Any) -> bool:
        if request.method not in allowed:
            return True
        return exempt_when is not None and bool(exempt_when(request))

    if exempt_when is not None:  # its errors name the user's function
        exempt_unless_method.__qualname__ = getattr(exempt_when, "__qualname__", "exempt_when")
    return exempt_unless_method


def _policies(
    specs: tuple[RequestSpec[Any], ...],
    name: str | None,
    key: KeyFunction[Any] | None,
    cost: int | Callable[[Any], int],
    exempt_when: Callable[[Any], bool] | None,
) -> tuple[Policy[Any], ...]:
    if not specs:
        raise ConfigurationError("limit() needs a spec: @limit('7/30s')")
    if not any(callable(spec) for spec in specs):
        # Fixed specs: one policy, so one store call takes them all or none.
        limits: list[Limit] = [x for spec in specs for x in limits_from(spec)]  # type: ignore[arg-type]
        combined = limits[0] if len(limits) == 1 else limits
        return (Policy(combined, name=name, key=key, cost=cost, exempt_when=exempt_when),)
    # Several plans under one name would be one pool checked at two rates.
    names = [name if name is None or len(specs) == 1 else f"{name}#{i}" for i in range(len(specs))]
    return tuple(
        Policy(spec, name=each, key=key, cost=cost, exempt_when=exempt_when)
        for spec, each in zip(specs, names, strict=True)
    )


def limit(
    *specs: RequestSpec[Any],
    name: str | None = None,
    key: KeyFunction[Any] | None = None,
    cost: int | Callable[[Any], int] = 1,
    methods: str | Iterable[str] | None = None,
    exempt_when: Callable[[Any], bool] | None = None,
) -> Callable[[View], View]:
    """Hold a view to ``specs``: ``"7/30s"``, ``"10/s; 1000/day"``, Limits, or a
    function of the ``HttpRequest`` returning one (a plan).

    ``name`` makes the limit a pool shared by every view naming it; ``key``
    (a function of the request) overrides ``BUCKETCORE_KEY``; ``cost`` is an
    int or a function of the request; ``methods`` limits only those HTTP
    methods; ``exempt_when(request)`` True skips the check. A spec that
    cannot parse, or a cost above its burst, raises here, at import.

    >>> @limit("7/30s", name="general")
    ... def pizza(request):
    ...     return HttpResponse("pizza")
    >>> [policy.limits[0].label for policy in pizza.__bucketcore_policies__]
    ['general']
    """
    policies = _policies(specs, name, key, cost, _methods_filter(methods, exempt_when))

    def decorate(view: View) -> View:
        if not callable(view):
            raise ConfigurationError(f"@limit decorates a view function, got {view!r}")
        original = getattr(view, _ORIGINAL, view)
        # Decorators apply bottom-up; the request is checked top-down.
        stacked = (*policies, *getattr(view, POLICIES, ())) if original is not view else policies
        return _limited(original, stacked)  # type: ignore[return-value]

    return decorate


def _limited(view: Callable[..., Any], policies: tuple[Policy[Any], ...]) -> Callable[..., Any]:
    source = str(getattr(view, "__qualname__", None) or view)
    wrapper: Callable[..., Any]
    if iscoroutinefunction(view):

        @functools.wraps(view)
        async def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
            result = await decide_request_async(
                async_limiter(), policies, request, config().options, source=source
            )
            if result.answer is not None:
                return response_of(result.answer)
            return with_headers(await view(request, *args, **kwargs), result.headers)

    else:

        @functools.wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
            result = decide_request(limiter(), policies, request, config().options, source=source)
            if result.answer is not None:
                return response_of(result.answer)
            return with_headers(view(request, *args, **kwargs), result.headers)

    setattr(wrapper, POLICIES, policies)
    setattr(wrapper, _ORIGINAL, view)
    return wrapper


def exempt(view: View) -> View:
    """Never limit this view, not even by ``BUCKETCORE_DEFAULT`` (health checks).

    >>> exempt(lambda request: None).__bucketcore_exempt__
    True
    """
    setattr(view, EXEMPT, True)
    return view


def _handlers(view: Any, method: str | None) -> list[Any]:
    """The view, and for a class-based view its class, ``dispatch`` and handler."""
    found = [view]
    view_class = getattr(view, "view_class", None) or getattr(view, "cls", None)
    if view_class is not None:
        found.append(view_class)
        found.append(getattr(view_class, "dispatch", None))
        if method is not None:
            found.append(getattr(view_class, method.lower(), None))
    return [each for each in found if each is not None]


def is_exempt(view: Any, method: str | None = None) -> bool:
    """Whether ``@exempt`` is on the view (or its class, dispatch or handler)."""
    return any(getattr(each, EXEMPT, False) is True for each in _handlers(view, method))


def own_policies(view: Any, method: str | None = None) -> tuple[Policy[Any], ...]:
    """The policies of ``@limit`` on the view or, for a class, on its handler.

    ``method_decorator`` copies the decorator's attributes onto the method
    it wraps, so they are found on the class.
    """
    policies: list[Policy[Any]] = []
    for each in _handlers(view, method):
        policies.extend(getattr(each, POLICIES, ()))
    return tuple(policies)
