"""The inlined single-limit step of MemoryStore.checked_try_acquire / checked_acquire,
table-style at fixed instants, against the reference ``_gcra.evaluate``."""

from __future__ import annotations

import pytest

from bucketcore._gcra import evaluate
from bucketcore.decision import from_nanoseconds
from bucketcore.limit import Limit
from bucketcore.memory import PURE_PYTHON_VARIABLE, MemoryStore

LIMIT = Limit(2, 1.0)  # 2 a second, burst 2
ODD = Limit(3, 7.0, burst=5)  # an emission interval that is not a whole ns count

# (limit, [(instant ns, cost), ...]): one bucket, called at these instants in order.
TABLE = [
    (LIMIT, [(0, 1), (0, 1), (0, 1), (499_999_999, 1), (500_000_000, 1), (10**10, 2)]),
    (LIMIT, [(0, 3), (0, 2), (1, 1), (10**9, 1)]),  # cost above the burst, then empty
    (ODD, [(0, 5), (1, 1), (2_333_333_333, 1), (2_333_333_334, 1), (10**12, 4)]),
    (LIMIT, [(10**9, 2), (0, 1), (5 * 10**8, 1)]),  # the clock steps back
]


@pytest.mark.parametrize(("limit", "calls"), TABLE)
@pytest.mark.parametrize("method", ["checked_try_acquire", "checked_acquire"])
def test_the_inlined_step_is_gcra_evaluate(
    monkeypatch: pytest.MonkeyPatch, limit: Limit, calls: list[tuple[int, int]], method: str
) -> None:
    now = [0]
    monkeypatch.setenv(PURE_PYTHON_VARIABLE, "1")  # the Python copy, not C
    store = MemoryStore(clock=lambda: now[0])
    tat: int | None = None
    for instant, cost in calls:
        now[0] = instant
        step = evaluate(limit, tat, instant, cost)
        answer = getattr(store, method)("k", limit, cost=cost)
        if method == "checked_try_acquire":
            assert answer is step.allowed
        else:
            assert answer == from_nanoseconds(
                step.allowed, step.remaining, step.retry_ns, step.reset_ns, limit
            )
        tat = step.tat if step.allowed or tat is not None else None
        held = store._tables[limit.identity]["k"][0] if store.holds((limit.identity, "k")) else None
        assert held == tat, (instant, cost)
