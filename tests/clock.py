"""A fake monotonic clock for tests: time moves only when a test says so."""

from __future__ import annotations


class FakeClock:
    """Monotonic nanoseconds under the test's control; ``sleep`` advances it."""

    def __init__(self, start_ns: int = 1_000_000_000_000) -> None:
        self.now_ns = start_ns

    def __call__(self) -> int:
        return self.now_ns

    def advance(self, seconds: float) -> None:
        self.now_ns += round(seconds * 1e9)

    def sleep(self, seconds: float) -> None:
        self.advance(seconds)

    async def async_sleep(self, seconds: float) -> None:
        self.advance(seconds)
