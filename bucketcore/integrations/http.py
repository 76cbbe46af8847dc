"""The one HTTP decision step, and what every integration shares with it.

An integration reads its request, then asks ``decide_request`` (or
``decide_request_async``) about its ``Policy`` list with its ``Options``;
it sends the ``Answer`` it gets back (a 429, a 503, or the user's own
denial), or calls the application and adds ``headers`` to its response.
Flask, ASGI, the FastAPI dependency, ``rate_limited`` and Django do
nothing else, so they give the same answers (docs/design.md §5).

Underneath, a ``Check`` (key, limits, cost, where, failure policy, hooks,
shadow mode, denial hook) and the limiter's answer (a ``Decision``, or the
``StoreError`` it raised) make a ``Verdict``: the hook event, the headers
and either "go on" (``answer is None``) or the ``Answer`` to send instead.
``verdict`` is that step without I/O; ``decide`` and ``decide_async`` ask a
``Limiter`` or an ``AsyncLimiter``, run it and tell the hooks.

>>> from bucketcore import Limiter
>>> plans = {"free": "2/minute", "pro": "10/minute"}
>>> policies = [Policy(lambda request: plans[request["plan"]], name="api")]
>>> options = Options(key=lambda request: request["user"])
>>> limiter = Limiter()
>>> free = {"user": "ann", "plan": "free"}
>>> [decide_request(limiter, policies, free, options).answer for _ in range(2)]
[None, None]
>>> decide_request(limiter, policies, free, options).answer.status
429
>>> pro = {"user": "bob", "plan": "pro"}
>>> decide_request(limiter, policies, pro, options).headers["RateLimit-Policy"]
'"api:10/60s";q=10;w=60'

With ``shadow=True`` the same denial is reported (headers, hook events
with ``shadow=True``) but the request goes on; ``enabled=False``, the
``limiting_disabled()`` context or ``BUCKETCORE_DISABLED=1`` turns limiting
off entirely (nothing is decided, no headers).

>>> from dataclasses import replace
>>> shadowed = decide_request(limiter, policies, free, replace(options, shadow=True))
>>> shadowed.answer is None, shadowed.headers["RateLimit"]
(True, '"api:2/60s";r=0;t=60')
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Coroutine, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar, overload

from bucketcore._keys import Key
from bucketcore.decision import Decision
from bucketcore.errors import ConfigurationError, StoreError
from bucketcore.integrations.answers import (
    Answer,
    DeniedHook,
    api_key,
    basic_auth_user,
    binding_decision,
    bounded_key,
    denied,
    denied_body,
    unavailable,
    unavailable_body,
)
from bucketcore.integrations.hooks import DecisionEvent, Hook, Hooks, emit, hooks_tuple
from bucketcore.integrations.policy import (
    CallbackError,
    KeyFunction,
    LimitSpec,
    Policy,
    PoolRegistry,
    RequestSpec,
    check_cost_fits,
    check_on_store_error,
    limiting_disabled,
    limiting_on,
    limits_from,
    methods_from,
)
from bucketcore.limit import Limit
from bucketcore.limiter import AsyncLimiter, Limiter

__all__ = [
    "Answer",
    "CallbackError",
    "Check",
    "DeniedHook",
    "KeyFunction",
    "LimitSpec",
    "OnStoreError",
    "Options",
    "Policy",
    "PoolRegistry",
    "RequestSpec",
    "RequestVerdict",
    "Verdict",
    "api_key",
    "basic_auth_user",
    "binding_decision",
    "bounded_key",
    "check_cost_fits",
    "check_on_store_error",
    "combined_headers",
    "decide",
    "decide_async",
    "decide_request",
    "decide_request_async",
    "denied",
    "denied_body",
    "limiting_disabled",
    "limiting_on",
    "limits_from",
    "methods_from",
    "unavailable_body",
    "verdict",
]

R = TypeVar("R")
# "503": fail closed; "pass": serve the request unlimited; "raise": the
# StoreError propagates to the caller (rate_limited, which has no response).
OnStoreError = Literal["503", "pass", "raise"]


@functools.lru_cache(maxsize=1024)
def _policy_item(limit: Limit) -> str:
    """The ``RateLimit-Policy`` item of one limit: ``"name";q=7;w=30``."""
    return Decision(True, 0, 0.0, 0.0, limit).headers()["RateLimit-Policy"]


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


@dataclass(frozen=True, slots=True)
class Check:
    """One check of one request (or call): what to take, from which pools.

    ``source`` says where, for the hooks (a Flask endpoint, an ASGI path, a
    function's name). ``wait`` (with ``timeout``) waits for the tokens
    instead of taking or refusing them at once (``rate_limited(wait=True)``).
    ``shadow`` decides and reports but never answers; ``on_denied`` builds
    the answer to a denial instead of the JSON 429.

    >>> from bucketcore import Limit
    >>> Check("user:alice", (Limit(7, 30),), cost=2).on_store_error
    '503'
    """

    key: Key
    limits: tuple[Limit, ...]
    cost: int = 1
    source: str = ""
    on_store_error: OnStoreError = "503"
    hooks: tuple[Hook, ...] = ()
    wait: bool = False
    timeout: float | None = None
    shadow: bool = False
    on_denied: DeniedHook | None = None


@dataclass(frozen=True, slots=True)
class Verdict:
    """What to do with a request: go on (``answer is None``) or answer instead.

    ``event`` is what the hooks are told; ``headers`` go on the response
    when the request goes on (none after a store failure let it pass).
    """

    event: DecisionEvent
    headers: dict[str, str]
    answer: Answer | None

    @property
    def decision(self) -> Decision | None:
        """The limiter's decision; None when the store failed."""
        return self.event.decision


def _headers(check: Check, decision: Decision) -> dict[str, str]:
    """The decision's headers, with every limit of the check in ``RateLimit-Policy``.

    The limiter reports the state of the binding limit only, so
    ``RateLimit`` has one item per check.
    """
    headers = decision.headers()
    if len(check.limits) > 1:
        items = [_policy_item(decision.limit), *map(_policy_item, check.limits)]
        headers["RateLimit-Policy"] = ", ".join(_unique(items))
    return headers


def _denial(check: Check, decision: Decision, headers: dict[str, str]) -> Answer:
    if check.on_denied is None:
        return denied(decision, headers)
    try:
        answer = check.on_denied(decision)
    except Exception as exc:
        name = getattr(check.on_denied, "__qualname__", repr(check.on_denied))
        raise CallbackError(f"the on_denied hook {name} raised {exc!r}") from exc
    if not isinstance(answer, Answer) or answer.status < 400:
        name = getattr(check.on_denied, "__qualname__", repr(check.on_denied))
        raise CallbackError(
            f"the on_denied hook {name} returned {answer!r}; it returns an Answer with a "
            "status of 400 or more (a denial that lets the request through is no limit)"
        )
    return Answer(answer.status, {**headers, **answer.headers}, answer.body)


def verdict(check: Check, outcome: Decision | StoreError) -> Verdict:
    """The step itself: the limiter's decision (or its failure) to a ``Verdict``.

    Pure: it emits nothing, and raises only when ``on_denied`` fails.

    >>> from bucketcore import Limit
    >>> from bucketcore.errors import StoreUnavailable
    >>> check = Check("k", (Limit(1, 60),), source="/pizza")
    >>> failed = verdict(check, StoreUnavailable("redis down"))
    >>> failed.event.outcome, failed.answer.status, failed.headers
    ('error', 503, {})
    >>> from dataclasses import replace
    >>> verdict(replace(check, on_store_error="pass"), StoreUnavailable("down")).answer is None
    True
    >>> no = Decision(False, 0, 60.0, 60.0, Limit(1, 60))
    >>> verdict(replace(check, shadow=True), no).answer is None
    True
    """
    if isinstance(outcome, StoreError):
        event = DecisionEvent(
            check.key, check.limits, "error", None, outcome, check.source, check.shadow
        )
        fails_closed = check.on_store_error == "503" and not check.shadow
        return Verdict(event, {}, unavailable() if fails_closed else None)
    event = DecisionEvent.of(
        check.key, check.limits, outcome, source=check.source, shadow=check.shadow
    )
    headers = _headers(check, outcome)
    if outcome.allowed or check.shadow:
        headers.pop("Retry-After", None)
        return Verdict(event, headers, None)
    return Verdict(event, headers, _denial(check, outcome, headers))


def _emitted(check: Check, outcome: Decision | StoreError) -> Verdict:
    """The verdict, after telling the hooks; a store error re-raised under "raise"."""
    result = verdict(check, outcome)
    emit(check.hooks, result.event)
    if isinstance(outcome, StoreError) and check.on_store_error == "raise":
        raise outcome
    return result


@overload
def _take(limiter: Limiter, check: Check) -> Decision: ...
@overload
def _take(limiter: AsyncLimiter, check: Check) -> Coroutine[Any, Any, Decision]: ...
def _take(limiter: Limiter | AsyncLimiter, check: Check) -> object:
    """The limiter call a check makes: a decision, or a coroutine of one."""
    if check.wait:
        return limiter.wait(check.key, *check.limits, cost=check.cost, timeout=check.timeout)
    return limiter.acquire(check.key, *check.limits, cost=check.cost)


def decide(limiter: Limiter, check: Check) -> Verdict:
    """Take (or wait for) the tokens of ``check``, tell the hooks, say what to do.

    >>> from bucketcore import Limit
    >>> decide(Limiter(), Check("k", (Limit(1, 60),))).answer is None
    True
    """
    try:
        decision = _take(limiter, check)
    except StoreError as exc:
        return _emitted(check, exc)
    return _emitted(check, decision)


async def decide_async(limiter: AsyncLimiter, check: Check) -> Verdict:
    """``decide`` for an ``AsyncLimiter``: the decision is awaited.

    >>> import asyncio
    >>> from bucketcore import AsyncLimiter, Limit
    >>> check = Check("k", (Limit(1, 60),))
    >>> asyncio.run(decide_async(AsyncLimiter(), check)).event.outcome
    'allowed'
    """
    try:
        decision = await _take(limiter, check)
    except StoreError as exc:
        return _emitted(check, exc)
    return _emitted(check, decision)


@dataclass(frozen=True, slots=True)
class Options(Generic[R]):
    """How one integration instance limits: everything but the policies.

    ``key`` names the client from the request; ``fallback`` names it when
    ``key`` cannot (the client's address). ``on_store_error``: ``"503"`` or
    ``"pass"``. ``shadow``: decide and report, never deny. ``enabled=False``:
    do nothing at all. ``on_denied(decision)`` returns the ``Answer`` to a
    denial (a custom 429). ``hooks`` is ``on_decision=`` (one or several).

    >>> Options(key=lambda request: "k", on_store_error="fail")
    Traceback (most recent call last):
    ...
    bucketcore.errors.ConfigurationError: on_store_error must be '503' or 'pass', got 'fail'
    """

    key: KeyFunction[R]
    fallback: KeyFunction[R] | None = None
    on_store_error: OnStoreError = "503"
    hooks: Hooks = field(default=())
    shadow: bool = False
    enabled: bool = True
    on_denied: DeniedHook | None = None

    def __post_init__(self) -> None:
        for what, func in (("key", self.key), ("fallback", self.fallback)):
            if func is not None and not callable(func):
                raise ConfigurationError(f"{what} must be a function of the request, got {func!r}")
        if self.on_denied is not None and not callable(self.on_denied):
            raise ConfigurationError(f"on_denied must be a function, got {self.on_denied!r}")
        if self.on_store_error != "raise":
            check_on_store_error(self.on_store_error)
        for what, flag in (("shadow", self.shadow), ("enabled", self.enabled)):
            if type(flag) is not bool:
                raise ConfigurationError(f"{what} must be True or False, got {flag!r}")
        object.__setattr__(self, "hooks", hooks_tuple(self.hooks))

    def check(self, policy: Policy[R], request: R, source: str) -> Check | None:
        """The check ``policy`` makes of ``request``; None when it is exempt."""
        resolved = policy.resolve(request, key=self.key, fallback=self.fallback)
        if resolved is None:
            return None
        hooks: tuple[Hook, ...] = self.hooks  # type: ignore[assignment]  # normalised above
        return Check(
            resolved.key,
            resolved.limits,
            cost=resolved.cost,
            source=source,
            on_store_error=self.on_store_error,
            hooks=hooks,
            shadow=self.shadow,
            on_denied=self.on_denied,
        )


@dataclass(frozen=True, slots=True)
class RequestVerdict:
    """What to do with one request, over all its policies.

    ``answer``: send it instead of calling the application (None: go on).
    ``headers``: add them to the application's response (the app's own
    win). ``verdicts``: one per policy checked, in order.
    """

    answer: Answer | None
    headers: dict[str, str]
    verdicts: tuple[Verdict, ...] = ()

    @property
    def decisions(self) -> tuple[Decision, ...]:
        """The decisions made (store failures left out)."""
        return tuple(v.decision for v in self.verdicts if v.decision is not None)


_GO_ON = RequestVerdict(None, {})


def combined_headers(verdicts: Sequence[Verdict]) -> dict[str, str]:
    """The headers of several checks: every policy listed, the legacy ones for the binding.

    ``RateLimit-Policy`` and ``RateLimit`` are the IETF draft's lists (one
    item per policy); ``X-RateLimit-*`` describe the binding decision.

    >>> from bucketcore import Limit
    >>> loose, tight = Limit(9, 9, name="a"), Limit(2, 9, name="b")
    >>> a = verdict(Check("k", (loose,)), Decision(True, 5, 0.0, 4.0, loose))
    >>> b = verdict(Check("k", (tight,)), Decision(True, 1, 0.0, 4.5, tight))
    >>> headers = combined_headers([a, b])
    >>> headers["RateLimit-Policy"], headers["RateLimit"], headers["X-RateLimit-Remaining"]
    ('"a";q=9;w=9, "b";q=2;w=9', '"a";r=5;t=4, "b";r=1;t=5', '1')
    """
    decided = [v for v in verdicts if v.decision is not None]
    if not decided:
        return {}
    if len(decided) == 1:
        return dict(decided[0].headers)
    decisions = [v.decision for v in decided if v.decision is not None]
    binding = binding_decision(decisions).headers()
    binding.pop("Retry-After", None)
    policies = _unique(item for v in decided for item in v.headers["RateLimit-Policy"].split(", "))
    binding["RateLimit-Policy"] = ", ".join(policies)
    binding["RateLimit"] = ", ".join(_unique(v.headers["RateLimit"] for v in decided))
    return binding


def _checks(
    policies: Iterable[Policy[R]], request: R, options: Options[R], source: str
) -> list[Check]:
    # Every function of the request runs before any token is taken: one
    # that fails leaves the buckets as they were.
    checks = (options.check(policy, request, source) for policy in policies)
    return [check for check in checks if check is not None]


def _taken(done: Sequence[tuple[Check, Verdict]]) -> list[Check]:
    """The checks that took tokens, before the last one (which answered)."""
    return [check for check, result in done[:-1] if result.decision is not None]


def _request_verdict(done: Sequence[tuple[Check, Verdict]]) -> RequestVerdict:
    verdicts = tuple(result for _, result in done)
    last = verdicts[-1].answer if verdicts else None
    if last is not None:
        return RequestVerdict(last, {}, verdicts)
    return RequestVerdict(None, combined_headers(verdicts), verdicts)


def decide_request(
    limiter: Limiter,
    policies: Iterable[Policy[R]],
    request: R,
    options: Options[R],
    *,
    source: str = "",
) -> RequestVerdict:
    """Check ``request`` against every policy, in order; see the module docstring.

    A request denied by one policy gets back what the earlier ones took, so
    a denied request costs nothing.
    """
    if not limiting_on(options.enabled):
        return _GO_ON
    done: list[tuple[Check, Verdict]] = []
    for check in _checks(policies, request, options, source):
        result = decide(limiter, check)
        done.append((check, result))
        if result.answer is not None:
            for taken in _taken(done):
                with contextlib.suppress(StoreError):  # the tokens refill with time
                    limiter.refund(taken.key, *taken.limits, tokens=taken.cost)
            break
    return _request_verdict(done)


async def decide_request_async(
    limiter: AsyncLimiter,
    policies: Iterable[Policy[R]],
    request: R,
    options: Options[R],
    *,
    source: str = "",
) -> RequestVerdict:
    """``decide_request`` on an ``AsyncLimiter``: every store call is awaited.

    >>> import asyncio
    >>> from bucketcore import AsyncLimiter
    >>> options = Options(key=lambda request: "ip:1.2.3.4")
    >>> run = decide_request_async(AsyncLimiter(), [Policy("1/minute")], None, options)
    >>> asyncio.run(run).headers["RateLimit"]
    '"1/60s";r=0;t=60'
    """
    if not limiting_on(options.enabled):
        return _GO_ON
    done: list[tuple[Check, Verdict]] = []
    for check in _checks(policies, request, options, source):
        result = await decide_async(limiter, check)
        done.append((check, result))
        if result.answer is not None:
            for taken in _taken(done):
                with contextlib.suppress(StoreError):
                    await limiter.refund(taken.key, *taken.limits, tokens=taken.cost)
            break
    return _request_verdict(done)
