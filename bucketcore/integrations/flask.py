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

import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import flask

from bucketcore.decision import Decision
from bucketcore.errors import ConfigurationError, RateLimited, StoreError
from bucketcore.integrations.hooks import Hooks, hooks_tuple
from bucketcore.integrations.http import (
    Answer,
    Check,
    LimitSpec,
    PoolRegistry,
    api_key,
    basic_auth_user,
    binding_decision,
    bounded_key,
    check_on_store_error,
    decide,
    denied,
    limits_from,
)
from bucketcore.limit import Limit
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


@dataclass(frozen=True, slots=True)
class _Rule:
    limits: tuple[Limit, ...]
    key: KeyFunc | None  # None: the extension's key function
    cost: int | Callable[[], int]
    exempt_when: Callable[[], bool] | None


def limit(
    spec: LimitSpec,
    *,
    name: str | None = None,
    key: KeyFunc | None = None,
    cost: int | Callable[[], int] = 1,
    exempt_when: Callable[[], bool] | None = None,
) -> Callable[[View], View]:
    """Hold a view to ``spec`` (``"7/30s"``, ``"10/s; 1000/day"``, Limits).

    ``name`` makes the limit a pool shared by every view naming it; ``key``
    overrides the extension's key function; ``cost`` (an int or a function
    of the request) is the tokens one request takes; ``exempt_when`` skips
    the check when it returns True. Several ``@limit`` on one view are all
    checked, top to bottom; a request denied by one gets back what the
    others took.

    >>> limit("7/30s", name="general")(lambda: "ok").__bucketcore_rules__[0].limits[0].name
    'general'
    """
    limits = limits_from(spec, name=name)
    if not callable(cost) and (type(cost) is not int or cost < 1):
        raise ConfigurationError(f"cost must be an int >= 1 or a function, got {cost!r}")
    rule = _Rule(limits, key, cost, exempt_when)

    def decorate(view: View) -> View:
        rules: list[_Rule] = getattr(view, _RULES, [])
        setattr(view, _RULES, [rule, *rules])  # decorators apply bottom-up; check top-down
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
    ``memory://``. ``key`` names the client (default
    ``by_ip``); ``default`` limits every view without its own ``@limit``
    (one pool, named ``default_name``). ``on_store_error``: ``"503"``
    (fail closed) or ``"pass"`` (serve the request unlimited).

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
        default: LimitSpec | None = None,
        default_name: str = "default",
        on_store_error: str = "503",
        on_decision: Hooks = None,
        exempt_when: Callable[[], bool] | None = None,
    ) -> None:
        if not callable(key):
            raise ConfigurationError(f"key must be a function, got {key!r}")
        self._limiter = limiter
        self._key = key
        self._default: tuple[_Rule, ...] = ()
        if default is not None:
            self._default = (_Rule(limits_from(default, name=default_name), None, 1, None),)
        self._policy = check_on_store_error(on_store_error)
        self._hooks = hooks_tuple(on_decision)
        self._exempt_when = exempt_when
        self._pools = PoolRegistry()
        self._checked_views: set[int] = set()
        for rule in self._default:
            self._pools.register(rule.limits)
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

    def limit(
        self,
        spec: LimitSpec,
        *,
        name: str | None = None,
        key: KeyFunc | None = None,
        cost: int | Callable[[], int] = 1,
        exempt_when: Callable[[], bool] | None = None,
    ) -> Callable[[View], View]:
        """``bucketcore.flask.limit``, with the pool name checked at once."""
        decorate = limit(spec, name=name, key=key, cost=cost, exempt_when=exempt_when)
        self._pools.register(limits_from(spec, name=name))
        return decorate

    exempt = staticmethod(exempt)

    def _rules_for(self, view: Callable[..., Any]) -> tuple[_Rule, ...]:
        if getattr(view, _EXEMPT, False):
            return ()
        rules: list[_Rule] | None = getattr(view, _RULES, None)
        if rules is None:
            return self._default
        if id(view) not in self._checked_views:
            for rule in rules:
                self._pools.register(rule.limits)
            self._checked_views.add(id(view))
        return tuple(rules)

    def _check(self) -> flask.Response | None:
        endpoint = flask.request.endpoint
        if endpoint is None or endpoint == "static":
            return None
        view = flask.current_app.view_functions.get(endpoint)
        rules = self._rules_for(view) if view is not None else self._default
        if not rules or (self._exempt_when is not None and self._exempt_when()):
            return None
        limiter = self.limiter
        taken: list[Check] = []
        decisions: list[Decision] = []
        for rule in rules:
            if rule.exempt_when is not None and rule.exempt_when():
                continue
            check = Check(
                (rule.key or self._key)() or by_ip(),
                rule.limits,
                cost=rule.cost() if callable(rule.cost) else rule.cost,
                source=endpoint,
                on_store_error=self._policy,
                hooks=self._hooks,
            )
            verdict = decide(limiter, check)
            if verdict.answer is not None:
                self._give_back(taken)
                if verdict.decision is not None:
                    flask.g.bucketcore_decisions = [verdict.decision]
                return _response(verdict.answer)
            if verdict.decision is not None:  # None: the store failed, policy "pass"
                decisions.append(verdict.decision)
                taken.append(check)
        flask.g.bucketcore_decisions = decisions
        return None

    def _rate_limited(self, error: RateLimited) -> flask.Response:
        decision = error.decision
        flask.g.bucketcore_decisions = [decision]
        return _response(denied(decision))

    def _give_back(self, taken: list[Check]) -> None:
        """A denied request costs nothing: return what earlier rules took."""
        for check in taken:
            # If the store fails now the denial still stands; the tokens refill with time.
            with contextlib.suppress(StoreError):
                self.limiter.refund(check.key, *check.limits, tokens=check.cost)

    def _add_headers(self, response: flask.Response) -> flask.Response:
        decisions: list[Decision] = flask.g.get("bucketcore_decisions", [])
        if decisions:
            for name, value in binding_decision(decisions).headers().items():
                response.headers.setdefault(name, value)
        return response
