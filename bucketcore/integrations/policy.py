"""What an integration is told to limit, checked when it is told, resolved per request.

A ``Policy`` is one limit an integration applies: a spec (fixed, or a
function of the request: a user's plan), an optional pool ``name``, a key
function, a cost (fixed or per request) and ``exempt_when``. Everything
that can be checked before the first request is checked when the policy is
made, so nothing accepted silently fails to limit what it names
(docs/design.md §5). A function the user gave that raises, or returns the
wrong thing, is a ``CallbackError`` naming the function.

The request is whatever the integration passes (Flask: nothing, so its
functions are wrapped; ASGI: the scope; FastAPI: the ``Request``; Django:
the ``HttpRequest``).

>>> plans = {"free": "2/minute", "pro": "10/minute"}
>>> policy = Policy(lambda request: plans[request["plan"]], name="api")
>>> resolved = policy.resolve({"plan": "pro"}, key=lambda request: "user:ann")
>>> resolved.key, [limit.name for limit in resolved.limits]
('user:ann', ['api:10/60s'])
>>> Policy("5/s", cost=6)
Traceback (most recent call last):
...
bucketcore.errors.ConfigurationError: cost 6 is above the burst 5 of '5/1s': every request would ...
"""

from __future__ import annotations

import contextlib
import functools
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Generic, Literal, TypeVar

from bucketcore._keys import Key
from bucketcore.errors import ConfigurationError
from bucketcore.limit import Limit

__all__ = [
    "DISABLED_ENV",
    "CallbackError",
    "KeyFunction",
    "LimitSpec",
    "Policy",
    "PoolRegistry",
    "RequestSpec",
    "Resolved",
    "check_cost_fits",
    "check_on_store_error",
    "limiting_disabled",
    "limiting_on",
    "limits_from",
    "methods_from",
]

R = TypeVar("R")
LimitSpec = str | Limit | Sequence[Limit]
RequestSpec = LimitSpec | Callable[[R], LimitSpec]
KeyFunction = Callable[[R], Key | None]

DISABLED_ENV = "BUCKETCORE_DISABLED"
"""Set to ``1`` (or ``true``/``yes``) to turn every integration's limiting off."""


class CallbackError(ConfigurationError):
    """A function given to an integration raised, or returned the wrong thing.

    The message names the function and its role, so the 500 it causes says
    what to fix.

    >>> def by_tenant(request):
    ...     return 42
    >>> Policy("1/s").resolve(None, key=by_tenant)
    Traceback (most recent call last):
    ...
    bucketcore.integrations.policy.CallbackError: the key function by_tenant returned 42 (int); ...
    """


def _named(func: object) -> str:
    return str(getattr(func, "__qualname__", None) or repr(func))


def call(role: str, func: Callable[[R], object], request: R) -> object:
    """``func(request)``, an exception it raises wrapped as a ``CallbackError``.

    >>> call("the cost function", lambda request: 1 / 0, None)
    Traceback (most recent call last):
    ...
    bucketcore.integrations.policy.CallbackError: the cost function <lambda> raised ...
    """
    try:
        return func(request)
    except Exception as exc:
        name = _named(func)
        raise CallbackError(f"{role} {name} raised {type(exc).__name__}: {exc}") from exc


def _returned(role: str, func: object, value: object, wanted: str) -> CallbackError:
    return CallbackError(
        f"{role} {_named(func)} returned {value!r} ({type(value).__name__}); {wanted}"
    )


def call_key(func: KeyFunction[R], request: R) -> Key | None:
    """The key ``func`` names the client by: a str, bytes or None (cannot tell).

    >>> call_key(lambda request: "ip:1.2.3.4", None)
    'ip:1.2.3.4'
    """
    key = call("the key function", func, request)
    if key is None or isinstance(key, str | bytes):
        return key
    raise _returned("the key function", func, key, "a key function returns a str, bytes or None")


def limits_from(
    spec: LimitSpec, *, name: str | None = None, for_http: bool = True
) -> tuple[Limit, ...]:
    """Limits from ``"7/30s"``, ``"10/s; 100/h"``, a ``Limit`` or a list.

    With several limits in one spec, ``name`` prefixes each one's spec so
    their names stay distinct (they are decided together, all or nothing).

    >>> [str(x) for x in limits_from("10/s; 100/h", name="api")]
    ['api:10/1s=10/1s', 'api:100/3600s=100/3600s']
    >>> limits_from("1/s", name="x\\r\\nSet-Cookie: a=b")
    Traceback (most recent call last):
    ...
    bucketcore.errors.ConfigurationError: a limit name used over HTTP must be printable ASCII, ...
    """
    if isinstance(spec, Limit):
        limits: tuple[Limit, ...] = (spec,)
    elif isinstance(spec, str):
        limits = tuple(Limit.parse_many(spec))
    elif isinstance(spec, Sequence) and spec and all(isinstance(x, Limit) for x in spec):
        limits = tuple(x for x in spec if isinstance(x, Limit))
    else:
        raise ConfigurationError(f"a limit is a spec like '7/30s', a Limit or Limits: {spec!r}")
    if name is not None:
        if len(limits) == 1:
            (limit,) = limits
            limits = (Limit(limit.tokens, limit.period, burst=limit.burst, name=name),)
        else:
            limits = tuple(
                Limit(x.tokens, x.period, burst=x.burst, name=f"{name}:{x}") for x in limits
            )
            names = [limit.name for limit in limits]
            if len(set(names)) != len(names):
                raise ConfigurationError(f"the limits of {name!r} are not distinct: {names}")
    for limit in limits if for_http else ():
        # The name goes into HTTP headers: printable ASCII only, so no header
        # can be broken (a newline) or refused by the server (non-Latin-1).
        if limit.name is not None and not (limit.name.isascii() and limit.name.isprintable()):
            raise ConfigurationError(
                f"a limit name used over HTTP must be printable ASCII, got {limit.name!r}"
            )
    return limits


@functools.lru_cache(maxsize=256)
def _plan_limits(spec: str | Limit | tuple[Limit, ...], name: str | None) -> tuple[Limit, ...]:
    """A per-request spec's limits: ``name`` prefixes each, so plans never share a pool.

    Two plans under one pool name would check one bucket against two rates.
    """
    limits = limits_from(spec)
    if name is None:
        return limits
    return tuple(Limit(x.tokens, x.period, burst=x.burst, name=f"{name}:{x}") for x in limits)


def check_cost_fits(limits: Iterable[Limit], cost: int, where: str = "") -> None:
    """Refuse a cost above a burst: no request could ever pass (a 429 forever).

    >>> check_cost_fits(limits_from("5/s"), 5)
    >>> check_cost_fits(limits_from("5/s", name="upload"), 6, "at /upload")
    Traceback (most recent call last):
    ...
    bucketcore.errors.ConfigurationError: cost 6 is above the burst 5 of 'upload' at /upload: ...
    """
    for limit in limits:
        burst = limit.tokens if limit.burst is None else limit.burst
        if cost > burst:
            place = f" {where}" if where else ""
            raise ConfigurationError(
                f"cost {cost} is above the burst {burst} of {limit.label!r}{place}: "
                "every request would be refused"
            )


def check_on_store_error(policy: object) -> Literal["503", "pass"]:
    """Validate the HTTP failure policy: ``"503"`` (fail closed) or ``"pass"``.

    >>> check_on_store_error("pass")
    'pass'
    """
    if policy == "503" or policy == "pass":
        return policy
    raise ConfigurationError(f"on_store_error must be '503' or 'pass', got {policy!r}")


# RFC 9110 and the registered extension methods (WebDAV, PATCH): enough to
# refuse "P", "O", "S", "T" (what iterating over "POST" gives).
_METHODS = frozenset(
    {
        "GET",
        "HEAD",
        "POST",
        "PUT",
        "DELETE",
        "CONNECT",
        "OPTIONS",
        "TRACE",
        "PATCH",
        "PROPFIND",
        "PROPPATCH",
        "MKCOL",
        "COPY",
        "MOVE",
        "LOCK",
        "UNLOCK",
        "SEARCH",
        "REPORT",
        "MKCALENDAR",
        "QUERY",
    }
)


def methods_from(methods: str | Iterable[str] | None) -> frozenset[str] | None:
    """HTTP methods from ``"POST"``, ``"get, post"`` or ``["GET", "POST"]``; None: all.

    >>> sorted(methods_from("post")), sorted(methods_from(["GET", "head"]))
    (['POST'], ['GET', 'HEAD'])
    >>> methods_from(list("POST"))
    Traceback (most recent call last):
    ...
    bucketcore.errors.ConfigurationError: 'P' is not an HTTP method (methods: 'POST' or ...
    """
    if methods is None:
        return None
    names = methods.replace(",", " ").split() if isinstance(methods, str) else list(methods)
    if not names:
        raise ConfigurationError("methods is empty: the rule would never match")
    checked = set()
    for method in names:
        if not isinstance(method, str) or method.strip().upper() not in _METHODS:
            raise ConfigurationError(
                f"{method!r} is not an HTTP method (methods: 'POST' or ['GET', 'POST'])"
            )
        checked.add(method.strip().upper())
    return frozenset(checked)


class PoolRegistry:
    """Refuses two different limits under one pool name.

    A name is a shared pool: ``/pizza`` and ``/pasta`` both saying
    ``name="general"`` draw on one bucket per key. If they disagreed about
    its size the bucket would be checked against two rates, so that is an
    error, raised when the second one is registered.

    >>> pools = PoolRegistry()
    >>> pools.register(limits_from("7/30s", name="general"), "at /pizza")
    >>> pools.register(limits_from("8/30s", name="general"), "at /pasta")
    Traceback (most recent call last):
    ...
    bucketcore.errors.ConfigurationError: pool 'general' is 8/30s at /pasta but 7/30s at /pizza
    """

    def __init__(self) -> None:
        self._pools: dict[str, tuple[Limit, str]] = {}

    def register(self, limits: Iterable[Limit], where: str = "here") -> None:
        for limit in limits:
            if limit.name is None:
                continue
            known, there = self._pools.setdefault(limit.name, (limit, where or "elsewhere"))
            if known != limit:
                spec_here = str(limit).partition("=")[2]
                spec_there = str(known).partition("=")[2]
                raise ConfigurationError(
                    f"pool {limit.name!r} is {spec_here} {where} but {spec_there} {there}"
                )


@dataclass(frozen=True, slots=True)
class Resolved:
    """A policy applied to one request: the key, the limits and the cost."""

    key: Key
    limits: tuple[Limit, ...]
    cost: int


class Policy(Generic[R]):
    """One limit an integration applies, checked now and resolved per request.

    ``spec``: ``"7/30s"``, ``"10/s; 1000/day"``, a ``Limit``, Limits, or a
    function of the request returning one of those (a plan). With a
    per-request spec, ``name`` prefixes each limit it returns (``api:2/60s``)
    so two plans never share, and disagree about, one pool. ``key``
    overrides the integration's key function; ``cost`` is an int or a
    function of the request; ``exempt_when(request)`` True skips the check.

    >>> Policy("7/30s", name="general").limits[0].label
    'general'
    >>> Policy("1/s", key="user:ann")
    Traceback (most recent call last):
    ...
    bucketcore.errors.ConfigurationError: key must be a function of the request, got 'user:ann'
    """

    __slots__ = ("cost", "exempt_when", "key", "limits", "name", "spec")

    def __init__(
        self,
        spec: RequestSpec[R],
        *,
        name: str | None = None,
        key: KeyFunction[R] | None = None,
        cost: int | Callable[[R], int] = 1,
        exempt_when: Callable[[R], bool] | None = None,
    ) -> None:
        for what, func in (("key", key), ("exempt_when", exempt_when)):
            if func is not None and not callable(func):
                raise ConfigurationError(f"{what} must be a function of the request, got {func!r}")
        if not callable(cost) and (type(cost) is not int or cost < 1):
            raise ConfigurationError(f"cost must be an int >= 1 or a function, got {cost!r}")
        self.spec = spec
        self.name = name
        self.key = key
        self.cost = cost
        self.exempt_when = exempt_when
        # The limits, when they do not depend on the request; else None.
        self.limits: tuple[Limit, ...] | None = None
        if name is not None:
            limits_from("1/s", name=name)  # the name alone must be fit for headers
        if not callable(spec):
            self.limits = limits_from(spec, name=name)
            if isinstance(cost, int):
                check_cost_fits(self.limits, cost)

    def __repr__(self) -> str:
        return f"Policy({self.spec!r}, name={self.name!r})"

    def limits_for(self, request: R) -> tuple[Limit, ...]:
        """The limits this request is held to.

        >>> Policy(lambda r: r).limits_for("3/minute")[0].tokens
        3
        """
        if self.limits is not None:
            return self.limits
        spec = self.spec
        assert callable(spec)
        given = call("the limit function", spec, request)
        if isinstance(given, list):
            given = tuple(given)
        try:
            return _plan_limits(given, self.name)
        except (ConfigurationError, TypeError) as exc:  # TypeError: unhashable
            wanted = "a limit function returns a spec like '7/30s', a Limit or Limits"
            raise _returned("the limit function", spec, given, wanted) from exc

    def cost_for(self, request: R) -> int:
        """The tokens this request takes.

        >>> Policy("5/s", cost=lambda r: r).cost_for(2)
        2
        """
        if isinstance(self.cost, int):
            return self.cost
        cost = call("the cost function", self.cost, request)
        if type(cost) is not int or cost < 1:
            raise _returned("the cost function", self.cost, cost, "a cost is an int >= 1")
        return cost

    def exempts(self, request: R) -> bool:
        """True when ``exempt_when`` says this request is not checked."""
        if self.exempt_when is None:
            return False
        return bool(call("the exempt_when function", self.exempt_when, request))

    def resolve(
        self, request: R, *, key: KeyFunction[R], fallback: KeyFunction[R] | None = None
    ) -> Resolved | None:
        """The key, limits and cost for ``request``; None when it is exempt.

        ``key`` is the integration's key function (this policy's own comes
        first); when it returns None (no credentials) ``fallback`` (the
        client's address) names the client, so leaving credentials out is
        never a way around a limit.

        >>> Policy("1/s").resolve(None, key=lambda r: None, fallback=lambda r: "ip:1")
        Resolved(key='ip:1', limits=(Limit(tokens=1, period=1.0, burst=1, name=None),), cost=1)
        """
        if self.exempts(request):
            return None
        named = call_key(self.key or key, request)
        if named is None:
            named = call_key(fallback, request) if fallback is not None else None
            if named is None:
                func = self.key or key
                raise _returned("the key function", func, None, "and no fallback names the client")
        limits = self.limits_for(request)
        cost = self.cost_for(request)
        if self.limits is None or not isinstance(self.cost, int):
            culprit = self.spec if self.limits is None else self.cost
            try:
                check_cost_fits(limits, cost, f"(from {_named(culprit)})")
            except ConfigurationError as exc:
                raise CallbackError(str(exc)) from None
        return Resolved(named, limits, cost)


_switch_lock = threading.Lock()
_switched_off = 0


@contextlib.contextmanager
def limiting_disabled() -> Iterator[None]:
    """Turn every integration's limiting off in this process, for a test suite.

    Process-wide (a test client may serve the app on another thread) and
    nestable. ``BUCKETCORE_DISABLED=1`` in the environment does the same;
    ``enabled=False`` on one extension, middleware or dependency turns that
    one off.

    >>> with limiting_disabled():
    ...     limiting_on()
    False
    >>> limiting_on()
    True
    """
    global _switched_off
    with _switch_lock:
        _switched_off += 1
    try:
        yield
    finally:
        with _switch_lock:
            _switched_off -= 1


def limiting_on(enabled: bool = True) -> bool:
    """Whether an integration constructed with ``enabled`` limits now.

    >>> limiting_on(enabled=False)
    False
    """
    if not enabled or _switched_off:
        return False
    flag = os.environ.get(DISABLED_ENV, "").strip().lower()
    if flag in ("", "0", "false", "no"):
        return True
    if flag in ("1", "true", "yes"):
        return False
    raise ConfigurationError(f"{DISABLED_ENV} must be 1 or 0 (true/false, yes/no), got {flag!r}")
