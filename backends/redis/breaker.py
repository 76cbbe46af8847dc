"""The circuit breaker: after a failure, no call waits on the network until a probe succeeds.

Without it, every call made while Redis is stalled waits for its own
timeout (measured: 2.02 s a call at the default timeouts), so a slow Redis
makes every request of the app slow. With it, the first failure opens the
breaker; from then on a call is answered at once by the failure policy
(``on_error``), except one caller at a time, after a cool-down with
jitter, who probes Redis with its own call. The probe's success closes the
breaker; its failure doubles the cool-down, up to ``breaker_max_cooldown``.

The breaker does no I/O and reads only its injected clock; the stores ask
it before they send (``admit``) and tell it how the call went (``failed``,
``succeeded``, ``abandoned``). It also owns the outage's log lines (one
when it begins, one when it ends) and the ``on_breaker`` hook.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable

from bucketcore.errors import StoreUnavailable

__all__ = ["CLOSED", "PROBE", "REFUSED", "Breaker", "BreakerHook"]

_LOG = logging.getLogger("bucketcore.redis")

REFUSED, CLOSED, PROBE = 0, 1, 2
"""``admit``'s tickets: answer without Redis; send (breaker closed); send as the probe."""

BreakerHook = Callable[[str, StoreUnavailable | None], None]
"""``on_breaker(state, error)``: ``("open", the error)`` when an outage begins,
``("closed", None)`` when it ends."""

_JITTER = 0.25  # each cool-down is stretched by up to a quarter, so callers spread out


class Breaker:
    """Whether a call may go to Redis now; I/O-free, on an injectable clock.

    ``cooldown`` seconds before the first probe (0: no breaker, every call
    is sent, but the outage is still logged once), doubling per failed probe
    up to ``max_cooldown``:

    >>> now = [0]
    >>> breaker = Breaker(1.0, 4.0, clock=lambda: now[0], random=lambda: 0.0)
    >>> breaker.admit() == CLOSED
    True
    >>> breaker.failed(CLOSED, StoreUnavailable("down"))
    >>> breaker.admit() == REFUSED  # open: answered by the failure policy at once
    True
    >>> now[0] = 1_000_000_000
    >>> breaker.admit() == PROBE, breaker.admit() == REFUSED  # one probe at a time
    (True, True)
    >>> breaker.succeeded(PROBE)
    >>> breaker.is_open, breaker.admit() == CLOSED
    (False, True)
    """

    __slots__ = (
        "_clock",
        "_cooldown_ns",
        "_lock",
        "_max_cooldown_ns",
        "_next_probe",
        "_opened",
        "_probing",
        "_random",
        "_wait_ns",
        "error",
        "is_open",
        "on_change",
        "quiet",
        "what",
    )

    def __init__(
        self,
        cooldown: float,
        max_cooldown: float,
        *,
        what: str = "on_error=deny",
        quiet: bool = False,
        on_change: BreakerHook | None = None,
        clock: Callable[[], int] = time.monotonic_ns,
        random: Callable[[], float] = random.random,
    ) -> None:
        self._cooldown_ns = round(cooldown * 1e9)
        self._max_cooldown_ns = max(self._cooldown_ns, round(max_cooldown * 1e9))
        self._clock, self._random = clock, random
        self._lock = threading.Lock()
        self.what = what
        self.quiet = quiet  # under on_error=raise every caller sees the error itself
        self.on_change = on_change
        self.is_open = False  # read without the lock on every call: a plain bool
        self.error: StoreUnavailable | None = None  # the failure that opened it
        self._opened = 0
        self._wait_ns = self._cooldown_ns
        self._next_probe = 0
        self._probing = False

    def admit(self) -> int:
        """``CLOSED`` or ``PROBE``: send the call; ``REFUSED``: answer it without Redis."""
        if not self.is_open:
            return CLOSED
        if self._cooldown_ns == 0:
            return PROBE  # no breaker: every call tries, and any success ends the outage
        with self._lock:
            if not self.is_open:
                return CLOSED
            if self._probing or self._clock() < self._next_probe:
                return REFUSED
            self._probing = True
            return PROBE

    def failed(self, ticket: int, error: StoreUnavailable) -> None:
        """A call admitted with ``ticket`` found Redis unavailable."""
        with self._lock:
            now = self._clock()
            if ticket == PROBE:
                self._probing = False
                self._wait_ns = min(2 * self._wait_ns, self._max_cooldown_ns)
                self._next_probe = now + self._stretched(self._wait_ns)
                return
            if self.is_open:  # a call already in flight when it opened
                return
            self.is_open, self.error, self._opened = True, error, now
            self._wait_ns = self._cooldown_ns
            self._next_probe = now + self._stretched(self._wait_ns)
        if not self.quiet and self._cooldown_ns:
            _LOG.warning(
                "%s; calls are answered by %s at once, "
                "and one probes Redis every %.3g s or so until it is back",
                error,
                self.what,
                self._cooldown_ns / 1e9,
            )
        elif not self.quiet:
            _LOG.warning("%s; %s decides until it is back", error, self.what)
        self._tell("open", error)

    def succeeded(self, ticket: int) -> None:
        """A call admitted with ``ticket`` was answered by Redis.

        Only a probe ends an outage: a call that was in flight when the
        breaker opened may still answer, and must not close it.
        """
        if ticket != PROBE:
            return
        with self._lock:
            self._probing = False
            if not self.is_open:
                return
            self.is_open, self.error = False, None
            seconds = (self._clock() - self._opened) / 1e9
        _LOG.warning("Redis is reachable again after %.3g s: decisions are exact again", seconds)
        self._tell("closed", None)

    def refuses(self) -> bool:
        """Whether ``admit`` would refuse now (read without the lock: a hint for a fast exit)."""
        return (
            self.is_open
            and self._cooldown_ns > 0
            and (self._probing or self._clock() < self._next_probe)
        )

    def abandoned(self, ticket: int) -> None:
        """The call admitted with ``ticket`` ended without an answer (cancelled): probe again."""
        if ticket == PROBE:
            with self._lock:
                self._probing = False

    def refusal(self) -> StoreUnavailable:
        """The error a refused call is answered with (the failure policy may decide instead).

        Its cause is what opened the breaker (redis-py's error, where there was one).
        """
        error = self.error
        refusal = StoreUnavailable(f"{error} (the circuit breaker is open: not sent)")
        refusal.__cause__ = error.__cause__ or error if error is not None else None
        return refusal

    def _tell(self, state: str, error: StoreUnavailable | None) -> None:
        if self.on_change is None:
            return
        try:
            self.on_change(state, error)
        except Exception:  # a hook's bug must not turn into the caller's error
            _LOG.exception("the on_breaker hook raised")

    def _stretched(self, wait_ns: int) -> int:
        return wait_ns + int(wait_ns * _JITTER * self._random())
