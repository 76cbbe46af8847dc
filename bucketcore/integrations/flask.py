"""Rate limits for Flask views: ``limit("7/30s", name="general", key=by_user)``.

``BucketCore(app)`` checks each request before its view runs. A view with
``@limit(...)`` is held to its own limits; any other view to the app-wide
``default`` (if given), unless it is ``@exempt``. Limits that share a
``name`` share one pool per key. Allowed answers carry the rate-limit
headers; a denied one is a 429 with ``Retry-After`` and a short JSON body.

``RateLimited`` raised by a view (say from ``bucketcore.rate_limited``
around a costly call) becomes the same 429.

A store failure (Redis down) answers 503 by default, or lets the request
through with ``on_store_error="pass"``. Every check is reported to the
``on_decision`` hooks (``bucketcore.hooks``).

Keys: ``by_ip`` (the default), ``by_user`` (HTTP basic-auth user name),
``by_api_key`` (the ``X-API-Key`` header, stored only as a digest) and
``by_header(name)``; or any function returning a str. A request the key
function cannot name (no credentials) is limited by its IP address instead,
so leaving credentials out is never a way around a limit.

>>> from flask import Flask
>>> app = Flask("doc")
>>> limits = BucketCore(app, key=by_ip)
>>> @app.get("/pizza")
... @limit("1/30s", name="general")
... def pizza():
...     return "pizza"
>>> client = app.test_client()
>>> client.get("/pizza").status_code, client.get("/pizza").status_code
(200, 429)
"""

from __future__ import annotations

import functools
import inspect
import os
from collections.abc import Callable
from typing import Any, TypeVar

import flask

from bucketcore.errors import ConfigurationError, RateLimited
from bucketcore.integrations.hooks import Hooks, hooks_tuple
from bucketcore.integrations.http import (
    Answer,
    DeniedHook,
    LimitSpec,
    Options,
    Policy,
    PoolRegistry,
    api_key,
    basic_auth_user,
    bounded_key,
    check_on_store_error,
    decide_request,
    denied,
    limits_from,
)
from bucketcore.limiter import Limiter

__all__ = [
    "BucketCore",
    "KeyFunc",
    "by_api_key",
    "by_header",
    "by_ip",
    "by_user",
    "exempt",
    "limit",
]

KeyFunc = Callable[[], str | None]
View = TypeVar("View", bound=Callable[..., Any])
T = TypeVar("T")

_RULES = "__bucketcore_rules__"
_EXEMPT = "__bucketcore_exempt__"
_EXTENSION = "bucketcore"


def by_ip() -> str:
    """The client's address, as Flask sees it (``request.remote_addr``).

    Behind a reverse proxy that is the proxy: wrap the app in Werkzeug's
    ``ProxyFix`` so it becomes the client's.

    >>> with flask.Flask("doc").test_request_context(environ_base={"REMOTE_ADDR": "127.0.0.17"}):
    ...     by_ip()
    'ip:127.0.0.17'
    """
    return bounded_key("ip", flask.request.remote_addr or "unknown")


def by_user() -> str | None:
    """The HTTP basic-auth user name, or None without credentials.

    >>> with flask.Flask("doc").test_request_context(headers={"Authorization": "Basic YWxpY2U6"}):
    ...     by_user()
    'user:alice'
    """
    user = basic_auth_user(flask.request.headers.get("Authorization"))
    return None if user is None else bounded_key("user", user)


def by_header(name: str) -> KeyFunc:
    """A key function for a credential carried in header ``name`` (digested).

    >>> with flask.Flask("doc").test_request_context(headers={"X-Token": "t"}):
    ...     by_header("X-Token")().startswith("api#")
    True
    """

    def key() -> str | None:
        value = flask.request.headers.get(name)
        return api_key(value) if value else None

    key.__name__ = f"by_header({name!r})"
    return key


by_api_key: KeyFunc = by_header("X-API-Key")
"""The ``X-API-Key`` header, as a digest (the store never sees the secret)."""


def _of_request(func: Callable[[], T]) -> Callable[[object], T]:
    """A Flask function (no argument: it reads ``flask.request``) as one of the request."""

    def of_request(request: object) -> T:
        return func()

    of_request.__qualname__ = getattr(func, "__qualname__", repr(func))
    return of_request


def _policy(
    spec: LimitSpec | Callable[[], LimitSpec],
    name: str | None,
    key: KeyFunc | None,
    cost: int | Callable[[], int],
    exempt_when: Callable[[], bool] | None,
) -> Policy[object]:
    for what, func in (("key", key), ("exempt_when", exempt_when)):
        if func is not None and not callable(func):
            raise ConfigurationError(f"{what} must be a function, got {func!r}")
    return Policy(
        _of_request(spec) if callable(spec) else spec,
        name=name,
        key=None if key is None else _of_request(key),
        cost=_of_request(cost) if callable(cost) else cost,
        exempt_when=None if exempt_when is None else _of_request(exempt_when),
    )


def _guarded(view: View) -> View:
    """``view``, refusing to run unlimited in an app without ``BucketCore``."""

    def refuse() -> None:
        if _EXTENSION not in flask.current_app.extensions:
            raise ConfigurationError(
                f"view {view.__qualname__!r} has @limit but its app has no BucketCore(app): "
                "it would run unlimited"
            )

    if inspect.iscoroutinefunction(view):

        @functools.wraps(view)
        async def guarded_async(*args: Any, **kwargs: Any) -> Any:
            refuse()
            return await view(*args, **kwargs)

        return guarded_async  # type: ignore[return-value]

    @functools.wraps(view)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        refuse()
        return view(*args, **kwargs)

    return guarded  # type: ignore[return-value]


def limit(
    spec: LimitSpec | Callable[[], LimitSpec],
    *,
    name: str | None = None,
    key: KeyFunc | None = None,
    cost: int | Callable[[], int] = 1,
    exempt_when: Callable[[], bool] | None = None,
) -> Callable[[View], View]:
    """Hold a view to ``spec`` (``"7/30s"``, ``"10/s; 1000/day"``, Limits).

    ``spec`` may be a function (of ``flask.request``) returning one: a
    user's plan. ``name`` makes the limit a pool shared by every view
    naming it; ``key`` overrides the extension's key function; ``cost``
    (an int or a function of the request) is the tokens one request takes;
    ``exempt_when`` skips the check when it returns True. Several
    ``@limit`` on one view are all checked, top to bottom; a request denied
    by one gets back what the others took. A cost above a burst is refused
    here; the view refuses to run in an app without ``BucketCore``.

    >>> limit("7/30s", name="general")(lambda: "ok").__bucketcore_rules__[0].limits[0].name
    'general'
    """
    policy = _policy(spec, name, key, cost, exempt_when)

    def decorate(view: View) -> View:
        rules: list[Policy[object]] | None = getattr(view, _RULES, None)
        if rules is None:
            view = _guarded(view)
            rules = []
        setattr(view, _RULES, [policy, *rules])  # decorators apply bottom-up; check top-down
        return view

    return decorate


def exempt(view: View) -> View:
    """Never rate-limit this view (health checks, static assets).

    >>> exempt(lambda: "ok").__bucketcore_exempt__
    True
    """
    setattr(view, _EXEMPT, True)
    return view


def _response(answer: Answer) -> flask.Response:
    return flask.Response(answer.body, status=answer.status, headers=answer.headers)


class BucketCore:
    """The Flask extension: checks limits before views, adds the headers.

    ``limiter`` defaults to a ``Limiter`` on the app's ``BUCKETCORE_URL``
    config, else the ``BUCKETCORE_URL`` environment variable, else
    ``memory://``. ``key`` names the client (default ``by_ip``);
    ``default`` limits every view without its own ``@limit`` (one pool,
    named ``default_name``). ``on_store_error``: ``"503"`` (fail closed) or
    ``"pass"`` (serve the request unlimited). ``shadow=True`` decides and
    reports but never denies; ``enabled=False`` (or ``BUCKETCORE_DISABLED=1``)
    turns it off; ``on_denied(decision)`` returns the ``Answer`` to a denial.
    Views are checked as they are registered: a pool conflict is refused
    then, with the two views named.

    >>> app = flask.Flask("doc")
    >>> BucketCore(app, default="100/hour").limiter is app.extensions["bucketcore"].limiter
    True
    """

    def __init__(
        self,
        app: flask.Flask | None = None,
        *,
        limiter: Limiter | None = None,
        key: KeyFunc = by_ip,
        default: LimitSpec | Callable[[], LimitSpec] | None = None,
        default_name: str = "default",
        on_store_error: str = "503",
        on_decision: Hooks = None,
        exempt_when: Callable[[], bool] | None = None,
        shadow: bool = False,
        enabled: bool = True,
        on_denied: DeniedHook | None = None,
    ) -> None:
        if not callable(key):
            raise ConfigurationError(f"key must be a function, got {key!r}")
        self._limiter = limiter
        self._default: tuple[Policy[object], ...] = ()
        if default is not None:
            self._default = (_policy(default, default_name, None, 1, None),)
        self._options: Options[object] = Options(
            key=_of_request(key),
            fallback=_of_request(by_ip),
            on_store_error=check_on_store_error(on_store_error),
            hooks=hooks_tuple(on_decision),
            shadow=shadow,
            enabled=enabled,
            on_denied=on_denied,
        )
        self._exempt_when = exempt_when
        self._pools = PoolRegistry()
        for policy in self._default:
            self._pools.register(policy.limits or (), "in the default")
        if app is not None:
            self.init_app(app)

    @property
    def limiter(self) -> Limiter:
        """The limiter deciding for this app (opened by ``init_app``)."""
        if self._limiter is None:
            raise ConfigurationError("BucketCore has no limiter yet: call init_app(app) first")
        return self._limiter

    def init_app(self, app: flask.Flask) -> None:
        """Register with ``app`` (the application-factory pattern)."""
        if self._limiter is None:
            url = app.config.get("BUCKETCORE_URL") or os.environ.get("BUCKETCORE_URL")
            self._limiter = Limiter(url or "memory://")
        app.extensions[_EXTENSION] = self
        app.before_request(self._check)
        app.after_request(self._add_headers)
        app.register_error_handler(RateLimited, self._rate_limited)
        for endpoint, view in app.view_functions.items():
            self._register(endpoint, view)
        add_url_rule = app.add_url_rule

        # Views registered later (routes, blueprints) are checked as they come,
        # so a conflict is refused at start-up, not on some first request.
        @functools.wraps(add_url_rule)
        def add_url_rule_checked(*args: Any, **kwargs: Any) -> None:
            add_url_rule(*args, **kwargs)
            for endpoint, view in app.view_functions.items():
                self._register(endpoint, view)

        app.add_url_rule = add_url_rule_checked  # type: ignore[method-assign]

    def _register(self, endpoint: str, view: Callable[..., Any]) -> None:
        for policy in getattr(view, _RULES, ()):
            self._pools.register(policy.limits or (), f"at view {endpoint!r}")

    def limit(
        self,
        spec: LimitSpec | Callable[[], LimitSpec],
        *,
        name: str | None = None,
        key: KeyFunc | None = None,
        cost: int | Callable[[], int] = 1,
        exempt_when: Callable[[], bool] | None = None,
    ) -> Callable[[View], View]:
        """``bucketcore.flask.limit``, with the pool name checked at once."""
        decorate = limit(spec, name=name, key=key, cost=cost, exempt_when=exempt_when)
        if not callable(spec):
            self._pools.register(limits_from(spec, name=name), "in a limit")
        return decorate

    exempt = staticmethod(exempt)

    def _policies_for(self, view: Callable[..., Any] | None) -> tuple[Policy[object], ...]:
        if view is None:
            return self._default
        if getattr(view, _EXEMPT, False):
            return ()
        rules: list[Policy[object]] | None = getattr(view, _RULES, None)
        return self._default if rules is None else tuple(rules)

    def _check(self) -> flask.Response | None:
        endpoint = flask.request.endpoint
        if endpoint is None or endpoint == "static":
            return None
        policies = self._policies_for(flask.current_app.view_functions.get(endpoint))
        if not policies or (self._exempt_when is not None and self._exempt_when()):
            return None
        verdict = decide_request(self.limiter, policies, None, self._options, source=endpoint)
        if verdict.answer is not None:
            return _response(verdict.answer)
        flask.g.bucketcore_headers = verdict.headers
        return None

    def _rate_limited(self, error: RateLimited) -> flask.Response:
        flask.g.bucketcore_headers = {}
        return _response(denied(error.decision))

    def _add_headers(self, response: flask.Response) -> flask.Response:
        headers: dict[str, str] = flask.g.get("bucketcore_headers", {})
        for name, value in headers.items():
            response.headers.setdefault(name, value)
        return response
