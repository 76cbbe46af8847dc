# The C fast path of MemoryStore and RocksDBStore (bucketcore/_fastpath.c).
from collections.abc import Callable
from typing import Any

from bucketcore.decision import Decision
from bucketcore.limit import Limit

class FastPath:
    def __init__(
        self,
        *,
        tables: dict[str, dict[Any, list[Any]]],
        lock: Any,
        clock: Callable[[], int],
        limit_type: type[Limit],
        decision_type: type[Decision],
        slow_try_acquire: Callable[..., bool],
        slow_acquire: Callable[..., Decision],
        slow_peek: Callable[..., Decision],
        create: Callable[[Limit, Any, int, int], None],
        check_same_limit: Callable[[list[Any], Limit], None],
        seconds_at_least: Callable[[int], float],
        max_key_length: int,
        put: Callable[[bytes, bytes, Any], object] | None = None,
        write_options: Any = None,
        wall_clock: Callable[[], int] | None = None,
        record_prefixes: dict[str, bytes] | None = None,
        record_version: int = 0,
    ) -> None: ...
    def close(self) -> None: ...
    def try_acquire(self, key: str | bytes, *limits: Limit, cost: int = 1) -> bool: ...
    def acquire(self, key: str | bytes, *limits: Limit, cost: int = 1) -> Decision: ...
    def peek(self, key: str | bytes, *limits: Limit, cost: int = 1) -> Decision: ...
