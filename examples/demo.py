"""A short tour of bucketcore on the embedded default (memory://).

Run it with ``make demo`` (or ``python examples/demo.py``): every line it
prints is a real decision, made on a fake clock so the tour takes no time.
"""

from __future__ import annotations

from bucketcore import Limit, Limiter


class TourClock:
    """Monotonic nanoseconds that move when the tour says so."""

    def __init__(self) -> None:
        self.now_ns = 0

    def __call__(self) -> int:
        return self.now_ns

    def sleep(self, seconds: float) -> None:
        self.now_ns += round(seconds * 1e9)


def main() -> None:
    clock = TourClock()
    limiter = Limiter("memory://", clock=clock, sleep=clock.sleep)
    general = Limit.parse("7/30s", name="general")  # /pizza and /pasta share it
    special = Limit.parse("1/10s", name="special")  # /icecream has its own
    hourly = Limit.parse("100/hour")

    print("alice orders pizza and pasta from one 'general' pool of 7 per 30 s:")
    for order in range(1, 9):
        dish = "pizza" if order % 2 else "pasta"
        decision = limiter.acquire("alice", general, hourly)
        verdict = "ok " if decision else "429"
        print(
            f"  {verdict} /{dish:<5} remaining={decision.remaining} "
            f"retry_after={decision.retry_after:.3f}s binding={decision.limit}"
        )
    print("  headers of that denial:", limiter.acquire("alice", general).headers())

    print("bob has a pool of his own:", limiter.acquire("bob", general).remaining, "left")
    print("alice's icecream pool is separate:", bool(limiter.acquire("alice", special)))

    print("alice waits for her next token instead of being refused:")
    decision = limiter.wait("alice", general, timeout=10.0)
    print(f"  waited {clock.now_ns / 1e9:.3f}s -> allowed={decision.allowed}")

    print("a refund gives back what was not used:")
    limiter.refund("alice", general, tokens=2)
    left = limiter.peek("alice", general).remaining
    print(f"  after refunding 2, the next order would leave {left}")
    limiter.close()


if __name__ == "__main__":
    main()
