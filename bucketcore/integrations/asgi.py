"""ASGI middleware: rate limits for Starlette, FastAPI or any ASGI app.

    app = RateLimitMiddleware(
        app,
        rules=[
            rule("/pizza", "7/30s", name="general", key=by_user),
            rule("/pasta", "7/30s", name="general", key=by_user),
            rule("/healthz"),                 # no spec: exempt
            rule("/api/*", "10/s; 1000/day"),  # a prefix; several limits, all or nothing
        ],
        default="100/hour",
    )

Every rule whose path pattern (``/pizza``, ``/items/{id}``, ``/api/*``;
``/x`` and ``/x/`` are one path) and methods match applies; a matching rule
without a spec exempts; a request no rule matches is held to ``default``.
Answers are those of ``bucketcore.flask``: the rate-limit headers on every
limited response, a 429 with ``Retry-After`` and a JSON body on denial, a 503
when the store fails (or the request passes, ``on_store_error="pass"``).
Decisions are awaited on an ``AsyncLimiter`` (``BUCKETCORE_URL`` by
default), so the event loop never blocks on Redis. Only ``http`` scopes
are limited; websockets and lifespan pass through, and a limiter the
middleware opened itself is closed when the server shuts the app down.

Keys are functions of the ASGI scope: ``by_ip`` (the default), ``by_user``,
``by_api_key``, ``by_header(name)``. A request the key function cannot name
is limited by its IP address instead.

>>> import asyncio
>>> async def hello(scope, receive, send):
...     await send({"type": "http.response.start", "status": 200, "headers": []})
...     await send({"type": "http.response.body", "body": b"hi"})
>>> app = RateLimitMiddleware(hello, rules=[rule("/", "1/minute")])
>>> scope = {"type": "http", "method": "GET", "path": "/", "client": ("127.0.0.1", 5)}
>>> async def status():
...     sent = []
...     async def send(message):
...         sent.append(message)
...     await app(scope, None, send)
...     return sent[0]["status"]
>>> asyncio.run(status()), asyncio.run(status())
(200, 429)
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any

from bucketcore.errors import ConfigurationError
from bucketcore.integrations.hooks import Hooks, hooks_tuple
from bucketcore.integrations.http import (
    Answer,
    DeniedHook,
    Options,
    Policy,
    PoolRegistry,
    RequestSpec,
    api_key,
    basic_auth_user,
    bounded_key,
    check_on_store_error,
    decide_request_async,
    methods_from,
)
from bucketcore.integrations.paths import PathPattern
from bucketcore.limit import Limit
from bucketcore.limiter import AsyncLimiter

__all__ = [
    "RateLimitMiddleware",
    "Rule",
    "ScopeKeyFunc",
    "by_api_key",
    "by_header",
    "by_ip",
    "by_user",
    "route_templates",
    "rule",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
ScopeKeyFunc = Callable[[Scope], str | None]


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            text: str = value.decode("latin-1")
            return text
    return None


def by_ip(scope: Scope) -> str:
    """The client address the server reports (``scope["client"]``).

    Behind a proxy, run uvicorn with ``--proxy-headers`` (and
    ``--forwarded-allow-ips``) so this is the real client.

    >>> by_ip({"client": ("127.0.0.17", 4000)})
    'ip:127.0.0.17'
    """
    client = scope.get("client")
    return bounded_key("ip", client[0] if client else "unknown")


def by_user(scope: Scope) -> str | None:
    """The HTTP basic-auth user name, or None without credentials.

    >>> by_user({"headers": [(b"authorization", b"Basic YWxpY2U6")]})
    'user:alice'
    """
    user = basic_auth_user(_header(scope, b"authorization"))
    return None if user is None else bounded_key("user", user)


def by_header(name: str) -> ScopeKeyFunc:
    """A key function for a credential in header ``name`` (stored as a digest).

    >>> by_header("X-Token")({"headers": [(b"x-token", b"t")]}).startswith("api#")
    True
    """
    wanted = name.lower().encode("latin-1")

    def key(scope: Scope) -> str | None:
        value = _header(scope, wanted)
        return api_key(value) if value else None

    key.__name__ = f"by_header({name!r})"
    return key


by_api_key: ScopeKeyFunc = by_header("X-API-Key")
"""The ``X-API-Key`` header, as a digest (the store never sees the secret)."""


@dataclass(frozen=True, slots=True)
class Rule:
    """Requests to ``pattern`` (with one of ``methods``) are held to ``policy``.

    Make them with ``rule()``; ``policy is None`` means exempt.
    """

    pattern: PathPattern
    policy: Policy[Scope] | None
    methods: frozenset[str] | None

    @property
    def path(self) -> str:
        """The pattern as written."""
        return self.pattern.pattern

    @property
    def limits(self) -> tuple[Limit, ...]:
        """The fixed limits (``()`` when exempt or decided per request)."""
        return () if self.policy is None else self.policy.limits or ()

    def matches(self, path: str, method: str, template: str | None = None) -> bool:
        """True when this rule is for ``method path`` (routed to ``template``).

        >>> rule("/api/*", "1/s").matches("/api/users", "GET")
        True
        >>> rule("/items/{id}", "1/s", methods="POST").matches("/items/7/", "POST")
        True
        """
        if self.methods is not None and method not in self.methods:
            return False
        return self.pattern.matches(path, template)


def rule(
    path: str,
    spec: RequestSpec[Scope] | None = None,
    *,
    name: str | None = None,
    key: ScopeKeyFunc | None = None,
    methods: str | Iterable[str] | None = None,
    cost: int | Callable[[Scope], int] = 1,
    exempt_when: Callable[[Scope], bool] | None = None,
) -> Rule:
    """A route rule: ``rule("/pizza", "7/30s", name="general")``; no spec exempts.

    ``path``: ``/pizza``, ``/items/{id}`` or ``/api/*`` (``bucketcore.
    integrations.paths``); ``spec`` may be a function of the scope (a
    plan); ``methods``: ``"POST"`` or ``["GET", "POST"]``; ``cost`` an int
    or a function of the scope; ``exempt_when(scope)`` True skips the rule.

    >>> rule("/healthz").limits
    ()
    >>> rule("/x", "1/s", methods="PSOT")
    Traceback (most recent call last):
    ...
    bucketcore.errors.ConfigurationError: 'PSOT' is not an HTTP method (methods: 'POST' or ...
    """
    pattern = PathPattern(path)
    allowed = methods_from(methods)
    if spec is None:
        if name is not None:
            raise ConfigurationError(f"rule {path!r} has a name but no limit")
        return Rule(pattern, None, allowed)
    policy = Policy(spec, name=name, key=key, cost=cost, exempt_when=exempt_when)
    return Rule(pattern, policy, allowed)


def route_templates(app: object) -> list[str] | None:
    """The path templates of a Starlette/FastAPI app's routes; None if unknown.

    >>> route_templates(object()) is None
    True
    """
    routes = getattr(app, "routes", None)
    if routes is None:
        return None
    templates: list[str] = []
    for route in routes:
        path = getattr(route, "path", None)
        if not isinstance(path, str):
            return None  # a Host or a custom route: what it serves cannot be known
        inner = getattr(route, "routes", None)
        if inner is None:
            templates.append(path)
            continue
        nested = route_templates(route)
        if nested is None or not nested:
            templates.append(path.rstrip("/") + "/{rest:path}")  # a mounted app
        else:
            templates.extend(path.rstrip("/") + template for template in nested)
    return templates


def _route_template(routes: Sequence[Any], scope: Scope) -> str | None:
    """The template of the route Starlette will pick for ``scope``, if any."""
    partial = None
    for route in routes:
        match, child = route.matches(scope)
        level = getattr(match, "value", 0)  # Starlette's Match: NONE 0, PARTIAL 1, FULL 2
        if level == 0:
            continue
        inner = getattr(route, "routes", None)
        template = str(route.path)
        if inner:
            below = _route_template(inner, {**scope, **child})
            template = template.rstrip("/") + (below or "/{rest:path}")
        if level == 2:
            return template
        partial = partial or template
    return partial


class RateLimitMiddleware:
    """Check each HTTP request against the matching ``rule``s.

    Every rule whose path and methods match applies, in order (all or
    nothing: a request denied by one gets back what the others took); a
    matching exempt rule (no spec) exempts the request; a request no rule
    matches is held to ``default`` if given. Patterns are checked against
    the app's routes at start-up (at construction when given a Starlette
    app, else at lifespan start-up): one no route could reach is refused.

    ``limiter`` is an ``AsyncLimiter`` (default: ``AsyncLimiter.from_env()``,
    opened on the first request). ``shadow=True`` decides and reports but
    never denies; ``enabled=False`` (or ``BUCKETCORE_DISABLED=1``) turns it
    off; ``on_denied(decision)`` returns the ``Answer`` to a denial.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        limiter: AsyncLimiter | None = None,
        rules: Sequence[Rule] = (),
        default: RequestSpec[Scope] | None = None,
        default_name: str = "default",
        key: ScopeKeyFunc = by_ip,
        on_store_error: str = "503",
        on_decision: Hooks = None,
        shadow: bool = False,
        enabled: bool = True,
        on_denied: DeniedHook | None = None,
    ) -> None:
        if limiter is not None and not isinstance(limiter, AsyncLimiter):
            raise ConfigurationError(f"limiter must be an AsyncLimiter, got {limiter!r}")
        if not callable(key):
            raise ConfigurationError(f"key must be a function of the scope, got {key!r}")
        for given in rules:
            if not isinstance(given, Rule):
                raise ConfigurationError(f"rules are made with rule(...), got {given!r}")
        self.app = app
        self._limiter = limiter
        self._owns_limiter = limiter is None
        self._rules = tuple(rules)
        self._default = None if default is None else Policy(default, name=default_name)
        self._options: Options[Scope] = Options(
            key=key,
            fallback=by_ip,
            on_store_error=check_on_store_error(on_store_error),
            hooks=hooks_tuple(on_decision),
            shadow=shadow,
            enabled=enabled,
            on_denied=on_denied,
        )
        pools = PoolRegistry()
        if self._default is not None and self._default.limits is not None:
            pools.register(self._default.limits, "in the default")
        for checked in self._rules:
            pools.register(checked.limits, f"at rule {checked.path!r}")
        self._validated: set[int] = set()
        self._templates: dict[tuple[str, str, str], str | None] = {}
        self._validate(app)

    @property
    def limiter(self) -> AsyncLimiter:
        """The limiter deciding for this app."""
        if self._limiter is None:
            self._limiter = AsyncLimiter.from_env()
        return self._limiter

    def _validate(self, app: object) -> None:
        """Refuse a rule no route of ``app`` could ever reach (once per app)."""
        if id(app) in self._validated:
            return
        templates = route_templates(app)
        self._validated.add(id(app))
        if templates is None:
            return
        for checked in self._rules:
            if not any(checked.pattern.could_match(template) for template in templates):
                known = ", ".join(templates[:8]) + (", ..." if len(templates) > 8 else "")
                raise ConfigurationError(
                    f"rule {checked.path!r} matches none of the app's routes ({known}): "
                    "it would never limit anything"
                )

    def _template(self, scope: Scope) -> str | None:
        app = scope.get("app")
        routes = getattr(app, "routes", None)
        if not routes:
            return None
        cache_key = (scope["method"], scope["path"], scope.get("root_path", ""))
        if cache_key not in self._templates:
            if len(self._templates) >= 4096:  # bounded: clients choose the paths
                self._templates.clear()
            self._templates[cache_key] = _route_template(routes, scope)
        return self._templates[cache_key]

    def _policies(self, scope: Scope) -> list[Policy[Scope]]:
        path: str = scope["path"]
        method: str = scope["method"]
        template = self._template(scope)
        matched = [r for r in self._rules if r.matches(path, method, template)]
        if not matched:
            return [] if self._default is None else [self._default]
        policies = [r.policy for r in matched]
        if any(policy is None for policy in policies):
            return []  # exempt
        return [policy for policy in policies if policy is not None]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, receive, self._lifespan_send(scope, send))
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if "app" in scope:
            self._validate(scope["app"])
        policies = self._policies(scope)
        if not policies:
            await self.app(scope, receive, send)
            return
        verdict = await decide_request_async(
            self.limiter, policies, scope, self._options, source=scope["path"]
        )
        if verdict.answer is not None:
            await _respond(send, verdict.answer)
        else:
            await self.app(scope, receive, _with_headers(send, verdict.headers))

    def _lifespan_send(self, scope: Scope, send: Send) -> Send:
        """``send``, refusing to start with a rule no route reaches, closing what it opened."""

        async def lifespan_send(message: Message) -> None:
            if message["type"] == "lifespan.startup.complete" and "app" in scope:
                try:
                    self._validate(scope["app"])
                except ConfigurationError as exc:
                    message = {"type": "lifespan.startup.failed", "message": str(exc)}
            closing = message["type"] == "lifespan.shutdown.complete" and self._owns_limiter
            if closing and self._limiter is not None:
                limiter, self._limiter = self._limiter, None
                await limiter.close()
            await send(message)

        return lifespan_send


def _encoded(headers: dict[str, str]) -> list[tuple[bytes, bytes]]:
    return [
        (name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()
    ]


async def _respond(send: Send, answer: Answer) -> None:
    length = (b"content-length", str(len(answer.body)).encode())
    headers = [*_encoded(answer.headers), length]
    await send({"type": "http.response.start", "status": answer.status, "headers": headers})
    await send({"type": "http.response.body", "body": answer.body})


def _with_headers(send: Send, added: dict[str, str]) -> Send:
    """``send``, adding the rate-limit headers the app did not set itself."""
    extra = _encoded(added)

    async def send_with_headers(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = list(message.get("headers", ()))
            present = {name.lower() for name, _ in headers}
            headers.extend(item for item in extra if item[0] not in present)
            message = {**message, "headers": headers}
        await send(message)

    return send_with_headers
