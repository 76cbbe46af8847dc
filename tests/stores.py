"""Stand-in stores for integration tests: one that is down, one that degrades."""

from __future__ import annotations

from collections.abc import Sequence

from bucketcore import Decision, Limit
from bucketcore._keys import Key
from bucketcore.errors import StoreUnavailable
from bucketcore.store import Request


class DownStore:
    """A remote store that cannot be reached: every call raises."""

    def __init__(self) -> None:
        self.calls = 0

    def _fail(self) -> StoreUnavailable:
        self.calls += 1
        return StoreUnavailable("redis://127.0.0.1:1 did not answer within 0.1 s")

    def acquire(self, key: Key, limits: tuple[Limit, ...], cost: int) -> Decision:
        raise self._fail()

    def try_acquire(self, key: Key, limits: tuple[Limit, ...], cost: int) -> bool:
        raise self._fail()

    def peek(self, key: Key, limits: tuple[Limit, ...], cost: int) -> Decision:
        raise self._fail()

    def acquire_many(self, requests: Sequence[Request]) -> list[Decision]:
        raise self._fail()

    def refund(self, key: Key, limits: tuple[Limit, ...], tokens: int) -> None:
        raise self._fail()

    def drain(self, key: Key, limits: tuple[Limit, ...], seconds_ns: int) -> None:
        raise self._fail()

    def reset(self, key: Key, limits: tuple[Limit, ...]) -> None:
        raise self._fail()

    def close(self) -> None:
        return None


class DegradedStore(DownStore):
    """A store whose failure policy answers (``on_error=allow``): degraded decisions."""

    def acquire(self, key: Key, limits: tuple[Limit, ...], cost: int) -> Decision:
        self.calls += 1
        return Decision(True, 0, 0.0, 0.0, limits[0], degraded=True)
