"""Hooks: a callback told about every decision an integration makes.

The Flask extension, the ASGI middleware and ``rate_limited`` accept
``on_decision=``: a callable (or a list of them) that receives one
``DecisionEvent`` per check. ``outcome`` is ``"allowed"``, ``"denied"``,
``"degraded"`` (a store failed and its failure policy answered) or
``"error"`` (the store raised; ``error`` holds the exception). A hook that
raises is a bug in the hook, and is not hidden: the exception propagates.

>>> from bucketcore import Limit, Limiter
>>> seen = []
>>> limit = Limit(1, 60.0, name="once")
>>> decision = Limiter().acquire("alice", limit)
>>> emit([seen.append], DecisionEvent.of("alice", (limit,), decision, source="doc"))
>>> seen[0].outcome, seen[0].limit_name
('allowed', 'once')
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from bucketcore._keys import Key
from bucketcore.decision import Decision
from bucketcore.errors import ConfigurationError
from bucketcore.limit import Limit

__all__ = ["DecisionEvent", "Hook", "Hooks", "Outcome", "emit", "hooks_tuple"]

Outcome = Literal["allowed", "denied", "degraded", "error"]


@dataclass(frozen=True, slots=True)
class DecisionEvent:
    """One check, as a hook sees it.

    ``key`` is the limiter key (already prefixed by the key function),
    ``limits`` what was checked, ``source`` where (a Flask endpoint, an
    ASGI path, a function's qualified name). ``decision`` is ``None`` only
    when ``outcome`` is ``"error"``. ``shadow``: the integration runs in
    shadow mode, so a ``"denied"`` request was served anyway.

    >>> from bucketcore import Limit
    >>> DecisionEvent("k", (Limit(1, 1),), "error", None, RuntimeError("down"), "f").limit_name
    '1/1s'
    """

    key: Key
    limits: tuple[Limit, ...]
    outcome: Outcome
    decision: Decision | None
    error: BaseException | None
    source: str
    shadow: bool = False

    @classmethod
    def of(
        cls,
        key: Key,
        limits: tuple[Limit, ...],
        decision: Decision,
        *,
        source: str,
        shadow: bool = False,
    ) -> DecisionEvent:
        """The event for a decision the store made (or its failure policy).

        >>> from bucketcore import Limit, Limiter
        >>> d = Limiter().acquire("k", Limit(1, 1))
        >>> DecisionEvent.of("k", (Limit(1, 1),), d, source="x").outcome
        'allowed'
        """
        if decision.degraded:
            outcome: Outcome = "degraded"
        else:
            outcome = "allowed" if decision.allowed else "denied"
        return cls(key, limits, outcome, decision, None, source, shadow)

    @property
    def limit_name(self) -> str:
        """The binding limit's name (or spec): a low-cardinality label.

        >>> from bucketcore import Limit
        >>> DecisionEvent("k", (Limit(7, 30, name="general"),), "error", None, None, "").limit_name
        'general'
        """
        limit = self.decision.limit if self.decision is not None else self.limits[0]
        return limit.label


Hook = Callable[[DecisionEvent], object]
Hooks = Hook | Sequence[Hook] | None


def hooks_tuple(hooks: Hooks) -> tuple[Hook, ...]:
    """Normalise ``on_decision=`` (None, one callable or several) to a tuple.

    >>> hooks_tuple(None), len(hooks_tuple(print)), len(hooks_tuple([print, print]))
    ((), 1, 2)
    """
    if hooks is None:
        return ()
    if callable(hooks):
        return (hooks,)
    checked = tuple(hooks)
    for hook in checked:
        if not callable(hook):
            raise ConfigurationError(f"on_decision hooks must be callable, got {hook!r}")
    return checked


def emit(hooks: Iterable[Hook], event: DecisionEvent) -> None:
    """Call every hook with ``event``, in order.

    >>> emit([], DecisionEvent("k", (), "error", None, None, ""))
    """
    for hook in hooks:
        hook(event)
