"""Many threads on one key are granted exactly what one caller would be."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from bucketcore import Limit, Limiter

YEAR = 365 * 86400.0
THREADS = 8


pytestmark = pytest.mark.usefixtures("switch_threads_constantly")


def _hammer(attempts_per_thread: int, attempt: Callable[[], bool]) -> int:
    start = threading.Barrier(THREADS)
    granted = [0] * THREADS

    def worker(index: int) -> None:
        start.wait()
        count = 0
        for _ in range(attempts_per_thread):
            if attempt():
                count += 1
        granted[index] = count

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(granted)


@pytest.mark.parametrize("round_", range(20))
def test_eight_threads_on_one_key_get_exactly_the_burst(round_: int) -> None:
    limit = Limit(5000, YEAR)  # one token every ~100 minutes: no refill to speak of
    limiter = Limiter()
    assert _hammer(800, lambda: limiter.try_acquire("hot", limit)) == 5000
    assert limiter.peek("hot", limit).remaining == 0


@pytest.mark.parametrize("round_", range(5))
def test_full_decisions_under_contention_are_exact_too(round_: int) -> None:
    limit = Limit(3000, YEAR)
    limiter = Limiter()
    assert _hammer(500, lambda: limiter.acquire("hot", limit).allowed) == 3000


@pytest.mark.parametrize("round_", range(5))
def test_several_limits_stay_all_or_nothing_under_contention(round_: int) -> None:
    roomy, tight = Limit(5000, YEAR), Limit(3000, YEAR)
    limiter = Limiter()
    granted = _hammer(500, lambda: limiter.acquire("hot", roomy, tight).allowed)
    assert granted == 3000
    # Nothing was taken from the roomy limit by the denied calls.
    assert limiter.acquire("hot", roomy).remaining == 5000 - 3000 - 1
