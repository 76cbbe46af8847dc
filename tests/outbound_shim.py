"""A stand-in for ``Limiter.drain`` until the branch that adds it lands (tests only).

``limiter()`` / ``async_limiter()`` give the real limiter when it has
``drain``; otherwise a memory:// limiter whose ``drain`` holds every wait
on the key until the drained instant, which for these tests (one key per
bucket, a burst-one bucket or a whole-bucket ``Retry-After``) is what the
real ``drain`` does. Delete this file once ``drain`` is on main.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from bucketcore import AsyncLimiter, Decision, Limiter


def _held(until: dict[Any, int], key: Any) -> float:
    return (until.get(key, 0) - time.monotonic_ns()) / 1e9


def _denied(held: float, decision: Decision) -> Decision:
    return Decision(False, 0, held, max(held, decision.reset_after), decision.limit)


class _DrainingLimiter(Limiter):
    def __init__(self) -> None:
        super().__init__()
        self.until: dict[Any, int] = {}

    def drain(self, key: Any, *limits: Any, seconds: float) -> None:
        until = time.monotonic_ns() + int(seconds * 1e9)
        self.until[key] = max(until, self.until.get(key, 0))

    def wait(self, key: Any, *limits: Any, cost: int = 1, timeout: float | None = None) -> Decision:
        held = _held(self.until, key)
        if held > 0:
            if timeout is not None and held > timeout:
                return _denied(held, self.peek(key, *limits, cost=cost))
            time.sleep(held)
            timeout = None if timeout is None else timeout - held
        return super().wait(key, *limits, cost=cost, timeout=timeout)


class _AsyncDrainingLimiter(AsyncLimiter):
    def __init__(self) -> None:
        super().__init__()
        self.until: dict[Any, int] = {}

    async def drain(self, key: Any, *limits: Any, seconds: float) -> None:
        until = time.monotonic_ns() + int(seconds * 1e9)
        self.until[key] = max(until, self.until.get(key, 0))

    async def wait(
        self, key: Any, *limits: Any, cost: int = 1, timeout: float | None = None
    ) -> Decision:
        while (held := _held(self.until, key)) > 0:
            if timeout is not None and held > timeout:
                return _denied(held, await self.peek(key, *limits, cost=cost))
            await asyncio.sleep(held)
            timeout = None if timeout is None else timeout - held
        return await super().wait(key, *limits, cost=cost, timeout=timeout)


def limiter() -> Limiter:
    return Limiter() if hasattr(Limiter, "drain") else _DrainingLimiter()


def async_limiter() -> AsyncLimiter:
    return AsyncLimiter() if hasattr(AsyncLimiter, "drain") else _AsyncDrainingLimiter()
