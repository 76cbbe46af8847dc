"""``rate_limited``: a decorator and context manager for any function or block.

A denied call raises ``RateLimited`` (carrying the ``Decision``) before the
function runs; ``wait=True`` blocks until the tokens are due instead (up to
``timeout`` seconds, then ``RateLimited``). ``key`` is a fixed key or, for a
decorator, a function of the call's arguments. Coroutine functions and
``async with`` work too: with an ``AsyncLimiter`` everything awaits.

>>> from bucketcore import Limiter
>>> limiter = Limiter()
>>> @rate_limited(limiter, "2/minute", key=lambda to, body: to)
... def send_mail(to, body):
...     return f"sent to {to}"
>>> send_mail("ann@example.com", "hi"), send_mail("ann@example.com", "hi again")
('sent to ann@example.com', 'sent to ann@example.com')
>>> send_mail("ann@example.com", "one more")
Traceback (most recent call last):
...
bucketcore.errors.RateLimited: rate limited by '2/60s': retry in 30 s
>>> with rate_limited(limiter, "1/s", key="nightly-job") as decision:
...     decision.remaining
0
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from types import TracebackType
from typing import Any, TypeVar, cast

from bucketcore._keys import Key
from bucketcore.decision import Decision
from bucketcore.errors import ConfigurationError, RateLimited
from bucketcore.integrations.hooks import Hooks, hooks_tuple
from bucketcore.integrations.http import (
    Check,
    LimitSpec,
    Verdict,
    decide,
    decide_async,
    limits_from,
)
from bucketcore.limiter import AsyncLimiter, Limiter

__all__ = ["rate_limited"]

F = TypeVar("F", bound=Callable[..., Any])


class rate_limited:  # lower case: it is used like a function, as contextlib's helpers are
    """Limit calls of a function (decorator) or runs of a block (``with``).

    ``spec``: ``"10/s"``, ``"10/s; 1000/day"``, a ``Limit`` or Limits;
    ``name`` names the pool; ``cost`` tokens per call; ``on_decision``
    hooks as in ``bucketcore.hooks``.

    >>> import asyncio
    >>> from bucketcore import AsyncLimiter
    >>> @rate_limited(AsyncLimiter(), "1/minute", key="crawler")
    ... async def fetch():
    ...     return "page"
    >>> asyncio.run(fetch())
    'page'
    """

    def __init__(
        self,
        limiter: Limiter | AsyncLimiter,
        spec: LimitSpec,
        *,
        key: Key | Callable[..., Key],
        name: str | None = None,
        cost: int = 1,
        wait: bool = False,
        timeout: float | None = None,
        on_decision: Hooks = None,
    ) -> None:
        if not isinstance(limiter, Limiter | AsyncLimiter):
            raise ConfigurationError(f"limiter must be a Limiter or AsyncLimiter, got {limiter!r}")
        if type(cost) is not int or cost < 1:
            raise ConfigurationError(f"cost must be an int >= 1, got {cost!r}")
        if not (callable(key) or isinstance(key, str | bytes)):
            raise ConfigurationError(f"key must be str, bytes or a function, got {key!r}")
        if timeout is not None and not wait:
            raise ConfigurationError("timeout only means something with wait=True")
        self._limiter = limiter
        self._limits = limits_from(spec, name=name, for_http=False)
        self._key = key
        self._cost = cost
        self._wait = wait
        self._timeout = timeout
        self._hooks = hooks_tuple(on_decision)
        self._source = "rate_limited"

    # -- deciding ------------------------------------------------------------

    def _fixed_key(self) -> Key:
        if callable(self._key):
            raise ConfigurationError("a key function needs a decorated call; give `with` a key")
        return self._key

    def _check_for(self, key: Key) -> Check:
        return Check(
            key,
            self._limits,
            cost=self._cost,
            source=self._source,
            on_store_error="raise",
            hooks=self._hooks,
            wait=self._wait,
            timeout=self._timeout,
        )

    def check(self, key: Key) -> Decision:
        """Take the tokens for one call now (or wait for them); raise if denied."""
        limiter = self._limiter
        if not isinstance(limiter, Limiter):
            raise ConfigurationError("an AsyncLimiter needs `async with` or an async function")
        return _decision_of(decide(limiter, self._check_for(key)))

    async def check_async(self, key: Key) -> Decision:
        """``check`` for coroutines: awaits an ``AsyncLimiter``'s decision."""
        limiter = self._limiter
        if isinstance(limiter, Limiter):
            if self._wait:
                raise ConfigurationError(
                    "wait=True with a Limiter would block the event loop: use an AsyncLimiter"
                )
            return self.check(key)
        return _decision_of(await decide_async(limiter, self._check_for(key)))

    # -- decorator -----------------------------------------------------------

    def _key_for(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Key:
        if callable(self._key):
            return self._key(*args, **kwargs)
        return self._key

    def __call__(self, func: F) -> F:
        self._source = getattr(func, "__qualname__", repr(func))
        if inspect.iscoroutinefunction(func):
            if isinstance(self._limiter, Limiter) and self._wait:
                raise ConfigurationError(
                    "wait=True with a Limiter would block the event loop: use an AsyncLimiter"
                )

            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                await self.check_async(self._key_for(args, kwargs))
                return await func(*args, **kwargs)

            return cast(F, async_wrapper)
        if isinstance(self._limiter, AsyncLimiter):
            raise ConfigurationError("an AsyncLimiter can only limit async functions")

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            self.check(self._key_for(args, kwargs))
            return func(*args, **kwargs)

        return cast(F, wrapper)

    # -- context manager -----------------------------------------------------

    def __enter__(self) -> Decision:
        return self.check(self._fixed_key())

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        return None

    async def __aenter__(self) -> Decision:
        return await self.check_async(self._fixed_key())

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        return None


def _decision_of(verdict: Verdict) -> Decision:
    """The allowed decision, or ``RateLimited`` (a store error was already raised)."""
    decision = verdict.decision
    assert decision is not None  # under on_store_error="raise", decide raised the error
    if verdict.answer is not None:
        raise RateLimited(decision)
    return decision
