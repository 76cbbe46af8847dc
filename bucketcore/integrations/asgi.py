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

The first rule whose path (exact, or a prefix ending in ``*``) and methods
match decides; a request no rule matches is held to ``default`` if given.
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
    Check,
    LimitSpec,
    PoolRegistry,
    api_key,
    basic_auth_user,
    bounded_key,
    check_on_store_error,
    decide_async,
    limits_from,
)
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
    """Requests to ``path`` (with one of ``methods``) are held to ``limits``.

    Make them with ``rule()``; ``limits == ()`` means exempt.
    """

    path: str
    limits: tuple[Limit, ...]
    key: ScopeKeyFunc | None
    methods: frozenset[str] | None
    cost: int

    def matches(self, path: str, method: str) -> bool:
        """True when this rule is for ``method path``.

        >>> rule("/api/*", "1/s").matches("/api/users", "GET")
        True
        """
        if self.methods is not None and method not in self.methods:
            return False
        if self.path.endswith("*"):
            return path.startswith(self.path[:-1])
        return path == self.path


def rule(
    path: str,
    spec: LimitSpec | None = None,
    *,
    name: str | None = None,
    key: ScopeKeyFunc | None = None,
    methods: Iterable[str] | None = None,
    cost: int = 1,
) -> Rule:
    """A route rule: ``rule("/pizza", "7/30s", name="general")``; no spec exempts.

    >>> rule("/healthz").limits
    ()
    """
    if type(path) is not str or not path.startswith("/"):
        raise ConfigurationError(f"a rule's path starts with '/', got {path!r}")
    if type(cost) is not int or cost < 1:
        raise ConfigurationError(f"cost must be an int >= 1, got {cost!r}")
    if spec is None and name is not None:
        raise ConfigurationError(f"rule {path!r} has a name but no limit")
    limits = () if spec is None else limits_from(spec, name=name)
    allowed = None if methods is None else frozenset(m.upper() for m in methods)
    return Rule(path, limits, key, allowed, cost)


class RateLimitMiddleware:
    """Check each HTTP request against the first matching ``rule``.

    ``limiter`` is an ``AsyncLimiter`` (default: ``AsyncLimiter.from_env()``,
    opened on the first request). See the module docstring for the rest.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        limiter: AsyncLimiter | None = None,
        rules: Sequence[Rule] = (),
        default: LimitSpec | None = None,
        default_name: str = "default",
        key: ScopeKeyFunc = by_ip,
        on_store_error: str = "503",
        on_decision: Hooks = None,
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
        self._default = None if default is None else rule("/*", default, name=default_name)
        self._key = key
        self._policy = check_on_store_error(on_store_error)
        self._hooks = hooks_tuple(on_decision)
        pools = PoolRegistry()
        for checked in (*self._rules, self._default):
            if checked is not None:
                pools.register(checked.limits)

    @property
    def limiter(self) -> AsyncLimiter:
        """The limiter deciding for this app."""
        if self._limiter is None:
            self._limiter = AsyncLimiter.from_env()
        return self._limiter

    def _rule_for(self, path: str, method: str) -> Rule | None:
        for candidate in self._rules:
            if candidate.matches(path, method):
                return candidate
        return self._default

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan" and self._owns_limiter:
            await self.app(scope, receive, self._close_on_shutdown(send))
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        chosen = self._rule_for(path, scope["method"])
        if chosen is None or not chosen.limits:
            await self.app(scope, receive, send)
            return
        check = Check(
            (chosen.key or self._key)(scope) or by_ip(scope),
            chosen.limits,
            cost=chosen.cost,
            source=path,
            on_store_error=self._policy,
            hooks=self._hooks,
        )
        verdict = await decide_async(self.limiter, check)
        if verdict.answer is not None:
            await _respond(send, verdict.answer)
        else:
            await self.app(scope, receive, _with_headers(send, verdict.headers))

    def _close_on_shutdown(self, send: Send) -> Send:
        async def send_closing(message: Message) -> None:
            if message["type"] == "lifespan.shutdown.complete" and self._limiter is not None:
                limiter, self._limiter = self._limiter, None
                await limiter.close()
            await send(message)

        return send_closing


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
