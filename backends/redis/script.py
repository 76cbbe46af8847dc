"""The decision script (``lua/gcra.lua``): loaded once, its arguments, NOSCRIPT.

The script is read from the package data once, at import, and called by its
SHA1. What it needs to know about a limit (GCRA units per microsecond, the
capacity, a cost in units, split into whole microseconds and a remainder,
packed as doubles in one argument; the limit's signature in another) is
computed once per limit, in a ``Plan``. The wire protocol (RESP) of the
usual arguments is kept too: ``acquire_many`` splices it into its runs.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Generator, Sequence
from importlib import resources
from typing import Any

from redis.exceptions import NoScriptError

from bucketcore._gcra import converted
from bucketcore.errors import ConfigurationError, CorruptState
from bucketcore.limit import Limit, Signature

__all__ = [
    "ACQUIRE",
    "CONVERTED",
    "DRAIN",
    "MANY",
    "PEEK",
    "REFUND",
    "SCRIPT",
    "SCRIPT_SHA",
    "TRY",
    "Plan",
    "Plans",
    "as_eval",
    "convert",
    "merge",
    "merge_converted",
    "packed",
    "recover",
    "reload",
    "reload_missing",
    "resp",
    "settled",
    "stale",
]

_pack_command: Any
try:  # redis-py packs through hiredis too, after a slow pass over the arguments
    from hiredis import pack_command as _pack_command
except ImportError:  # pragma: no cover - hiredis is part of the [redis] extra
    _pack_command = None

SCRIPT = resources.files("bucketcore.backends").joinpath("lua/gcra.lua").read_bytes()
"""The decision script, read once from the package data."""
SCRIPT_SHA = hashlib.sha1(SCRIPT, usedforsecurity=False).hexdigest()
"""Its SHA1, the name EVALSHA calls it by."""

ACQUIRE, TRY, PEEK, REFUND, MANY, DRAIN, CONVERTED = b"a", b"t", b"p", b"r", b"m", b"d", b"c"
"""The script's modes (its first argument; see lua/gcra.lua)."""

# The script's exactness bounds (see lua/gcra.lua): remainders below 2^52,
# debts below 2^50 microseconds.
_MAX_UNITS_PER_US = 2**52
_MAX_CAPACITY_US = 2**50
_MAX_REFUND_US = 2**51


def resp(items: Sequence[bytes]) -> bytes:
    """Bulk strings in the Redis wire protocol (RESP), to splice into a command.

    >>> resp([b"a", b"10"])
    b'$1\\r\\na\\r\\n$2\\r\\n10\\r\\n'
    """
    return b"".join([b"$%d\r\n%s\r\n" % (len(item), item) for item in items])


def packed(conn: Any, command: Any) -> bytes:
    r"""A command in the wire protocol: packed already (bytes) or packed now.

    >>> packed(None, ["GET", "k"])
    b'*2\r\n$3\r\nGET\r\n$1\r\nk\r\n'
    """
    if type(command) is bytes:
        return command
    if _pack_command is not None:
        data: bytes = _pack_command(tuple(command))
        return data
    return b"".join(conn.pack_command(*command))


_NUMBERS = struct.Struct("<ddddd")  # W, amount_us, amount_frac, cap_us, cap_frac
_DRAIN_NUMBERS = struct.Struct("<ddddddd")  # the same, then held_us, held_frac
_SIGNATURE = struct.Struct("<QQQ")  # units_per_ns, token_units, burst: opaque to the script


class Plan:
    """What the script needs to know about one limit, computed once.

    >>> plan = Plan(Limit(10, 1.0))
    >>> numbers, signature = plan.args(1)
    >>> plan.w, _NUMBERS.unpack(numbers)  # 0.1 s per token, a burst of 10 refills in 1 s
    (1000, (1000.0, 100000.0, 0.0, 1000000.0, 0.0))
    >>> _SIGNATURE.unpack(signature)
    (1, 100000000, 10)
    """

    __slots__ = (
        "cap_frac",
        "cap_us",
        "capacity",
        "costs",
        "held",
        "limit",
        "packed",
        "signature",
        "suffix",
        "w",
    )

    def __init__(self, limit: Limit) -> None:
        w = 1000 * limit.units_per_ns  # GCRA units per microsecond
        capacity = limit.capacity_units
        cap_us, cap_frac = divmod(capacity, w)
        if w > _MAX_UNITS_PER_US or cap_us > _MAX_CAPACITY_US:
            raise ConfigurationError(
                f"the Redis backend cannot decide {limit} exactly: its burst must refill "
                f"within 2^50 us (~35 years) and tokens / gcd(tokens, period_ns) must be "
                f"at most 2^52 / 1000"
            )
        self.limit = limit
        self.suffix = b"}" + limit.identity.encode("utf-8", "surrogatepass")
        self.w = w
        self.capacity = capacity
        self.cap_us, self.cap_frac = cap_us, cap_frac
        self.held = divmod(capacity - limit.token_units, w)  # capacity less one token
        self.signature = _SIGNATURE.pack(*limit.signature)
        self.costs: dict[int, tuple[bytes, bytes]] = {}
        self.packed: dict[int, bytes] = {}  # the same, in the wire protocol

    def _numbers(self, amount: int) -> bytes:
        # Every number is an integer below 2^53: exact as a double.
        return _NUMBERS.pack(self.w, *divmod(amount, self.w), self.cap_us, self.cap_frac)

    def args(self, cost: int) -> tuple[bytes, bytes]:
        """The two script arguments for taking ``cost`` tokens."""
        args = self.costs.get(cost)
        if args is None:
            # Beyond the capacity every cost is denied alike; clamping keeps
            # the script's sums under 2^53 (the client knows the real cost).
            amount = min(cost * self.limit.token_units, self.capacity + 1)
            args = (self._numbers(amount), self.signature)
            if len(self.costs) < 64:
                self.costs[cost] = args
                self.packed[cost] = resp(args)
        return args

    def packed_args(self, cost: int) -> bytes:
        """``args(cost)`` in the wire protocol."""
        packed = self.packed.get(cost)
        return packed if packed is not None else resp(self.args(cost))

    def refund_args(self, tokens: int) -> tuple[bytes, bytes]:
        """The two script arguments for giving ``tokens`` back."""
        amount = min(tokens * self.limit.token_units, _MAX_REFUND_US * self.w)
        return (self._numbers(amount), self.signature)

    def drain_args(self, seconds_ns: int) -> tuple[bytes, bytes]:
        """The two script arguments for holding the bucket empty ``seconds_ns``.

        The server's clock counts microseconds: the hold is rounded up to one.
        """
        numbers = _DRAIN_NUMBERS.pack(
            self.w, -(-seconds_ns // 1000), 0, self.cap_us, self.cap_frac, *self.held
        )
        return (numbers, self.signature)


class Plans:
    """One store's plans, made once per limit (one name may carry several rates).

    >>> plans = Plans()
    >>> plans.get(Limit(10, 1.0, name="api")).w, plans.get(Limit(20, 1.0, name="api")).w
    (1000, 1000)
    """

    __slots__ = ("known", "others")

    def __init__(self) -> None:
        self.known: dict[str, Plan] = {}  # the last plan of each identity
        self.others: dict[tuple[str, Signature], Plan] = {}  # plans, tiers: the rest

    def get(self, limit: Limit) -> Plan:
        """The plan for ``limit``, made on first use (and kept, up to 4096 of each)."""
        plan = self.known.get(limit.identity)
        if plan is None:
            plan = Plan(limit)
            if len(self.known) < 4096:
                self.known[limit.identity] = plan
        elif plan.limit is not limit and plan.limit.signature != limit.signature:
            key = (limit.identity, limit.signature)
            other = self.others.get(key)
            if other is None:
                other = Plan(limit)
                if len(self.others) < 4096:
                    self.others[key] = other
            return other
        return plan


def settled(replies: list[Any]) -> bool:
    """True when no reply asks for the script to be loaded or a bucket converted.

    The common case, checked in one pass before ``reload_missing`` and ``stale``.

    >>> settled([[5, 1, 0, 0], 1]), settled([[-1, 5, b"k", b"v", b"s"]])
    (True, False)
    """
    for reply in replies:
        kind = type(reply)
        if kind is NoScriptError or (kind is list and reply and reply[0] == -1):
            return False
    return True


def stale(replies: list[Any]) -> list[int]:
    """The indexes of replies saying a bucket is kept under another limit (a plan changed).

    Such a call decided nothing: ``convert`` its buckets, then send it again.

    >>> stale([[-1, 5, b"k", b"v", b"s"], [5, 1, 0, 0], 1])
    [0]
    """
    return [i for i, reply in enumerate(replies) if type(reply) is list and reply[:1] == [-1]]


def convert(commands: list[Any], replies: list[Any], indexes: list[int]) -> list[Any]:
    """Compare-and-set commands converting the stale buckets, then those calls again.

    A stale reply is ``[-1, now_us, key, value, signature, ...]``. Each
    stored state is re-expressed under the call's limit with
    ``_gcra.converted`` at the server's ``now`` (the script cannot do that
    exactly in doubles); a bucket another client changed in between is left
    alone, and its call meets it again.
    """
    converting: list[Any] = []
    for index in indexes:
        reply = replies[index]
        if type(reply[1]) is not int or (len(reply) - 2) % 3:
            raise CorruptState(f"unexpected reply from the bucketcore script: {reply!r}")
        now_ns = reply[1] * 1000
        command: list[Any] = ["EVALSHA", SCRIPT_SHA, (len(reply) - 2) // 3]
        values: list[Any] = [CONVERTED]
        for at in range(2, len(reply), 3):
            key, value, signature = reply[at], reply[at + 1], reply[at + 2]
            command.append(key)
            values += [value, *_converted_value(value, signature, now_ns)]
        converting.append(command + values)
    return converting + [commands[index] for index in indexes]


def merge_converted(replies: list[Any], indexes: list[int], again: list[Any]) -> list[Any]:
    """``replies`` with the answers of ``convert``'s repeated calls in their places."""
    for index, reply in zip(indexes, again[len(indexes) :], strict=True):
        replies[index] = reply
    return replies


_STATE = struct.Struct("<dd")  # tat_us, tat_frac; then the signature, then maybe a hold
_HOLD = struct.Struct("<dddd")  # held_until_us, held_for_us, held_us, held_frac
_VALUE_SIZE = _STATE.size + _SIGNATURE.size  # 40
_HELD_VALUE_SIZE = _VALUE_SIZE + _HOLD.size  # 72


def _signature(packed: bytes) -> Signature:
    signature = Signature(*_SIGNATURE.unpack(packed))
    if min(signature) < 1:
        raise ValueError(f"no limit has the signature {signature}")
    return signature


def _converted_value(value: bytes, signature: bytes, now_ns: int) -> tuple[bytes, bytes]:
    """The new value (b"": full) and its expiry in ms, for a bucket under ``signature``.

    A value is ``<dd`` (tat_us, tat_frac), the signature, and while a drain
    holds it ``<dddd`` (held_until_us, held_for_us, the capacity less one
    token as us and frac): docs/design.md §9.
    """
    try:
        if len(value) not in (_VALUE_SIZE, _HELD_VALUE_SIZE):
            raise ValueError(f"{len(value)} bytes")
        old = _signature(value[_STATE.size : _VALUE_SIZE])
        new = _signature(signature)
        tat_us, tat_frac = _STATE.unpack_from(value)
        is_held = len(value) == _HELD_VALUE_SIZE
        until_us, for_us = _HOLD.unpack_from(value, _VALUE_SIZE)[:2] if is_held else (0, 0)
    except (ValueError, TypeError, struct.error) as exc:
        raise CorruptState(f"a stored bucket state does not parse: {value!r}") from exc
    now_us = now_ns // 1000
    held_until = min(int(until_us), now_us + int(for_us)) * 1000 if for_us else None
    stored = int(tat_us) * 1000 * old.units_per_ns + int(tat_frac)
    tat = converted(old, new, stored, now_ns, held_until)
    new_now = now_ns * new.units_per_ns
    if tat is None or tat <= new_now:
        return b"", b"1"
    new_w = 1000 * new.units_per_ns
    new_us, new_frac = divmod(tat, new_w)
    state = _STATE.pack(new_us, new_frac) + signature
    if held_until is not None and tat - new_now > new.burst * new.token_units:
        held = divmod((new.burst - 1) * new.token_units, new_w)
        state += _HOLD.pack(held_until // 1000, for_us, *held)
    return state, str((new_us - now_us) // 1000 + 2).encode()


def reload_missing(commands: list[Any], replies: list[Any]) -> list[int]:
    """The indexes of the commands answered NOSCRIPT: send ``reload(...)`` for them.

    NOSCRIPT (after a restart, a failover or ``SCRIPT FLUSH``) means the
    script did not run, so nothing was charged: loading it and sending
    those commands once more, as ``EVAL`` with the script's text (which
    cannot meet NOSCRIPT, even if the cache is flushed again meanwhile),
    decides each exactly once. This and ``reload``/``merge`` do no I/O, so
    the sync and async stores recover alike, for one call or for runs, on a
    server or a cluster node.

    >>> commands = [["EVALSHA", SCRIPT_SHA, 1, b"k"], ["EVALSHA", SCRIPT_SHA, 1, b"j"]]
    >>> replies = [1, NoScriptError("NOSCRIPT")]
    >>> missing = reload_missing(commands, replies)
    >>> [command[0] for command in reload(commands, missing)]
    ['SCRIPT', 'EVAL']
    >>> merge(replies, missing, ["<sha>", 7])
    [1, 7]
    """
    return [i for i, reply in enumerate(replies) if type(reply) is NoScriptError]


def reload(commands: list[Any], missing: list[int]) -> list[Any]:
    """SCRIPT LOAD, then the commands that found no script as ``EVAL``, in one write."""
    return [["SCRIPT", "LOAD", SCRIPT]] + [as_eval(commands[i]) for i in missing]


def merge(replies: list[Any], missing: list[int], again: list[Any]) -> list[Any]:
    """``replies`` with the answers of ``reload``'s commands in their places."""
    for i, reply in zip(missing, again[1:], strict=True):
        replies[i] = reply
    return replies


_EVALSHA_HEAD = resp([b"EVALSHA", SCRIPT_SHA.encode()])
_EVAL_HEAD = resp([b"EVAL", SCRIPT])


def as_eval(command: Any) -> Any:
    r"""An ``EVALSHA`` of the script (a list, or packed already) as ``EVAL`` with its text.

    >>> as_eval(["EVALSHA", SCRIPT_SHA, 1, b"k", b"a"])[2:]
    [1, b'k', b'a']
    >>> packed_run = b"*3\r\n" + _EVALSHA_HEAD + b"$1\r\n0\r\n"
    >>> as_eval(packed_run) == b"*3\r\n" + _EVAL_HEAD + b"$1\r\n0\r\n"
    True
    """
    if type(command) is bytes:
        head_end = command.index(b"\r\n") + 2  # after "*<count>"
        if not command.startswith(_EVALSHA_HEAD, head_end):
            raise ValueError("not a packed EVALSHA of the bucketcore script")
        return command[:head_end] + _EVAL_HEAD + command[head_end + len(_EVALSHA_HEAD) :]
    if command[0] != "EVALSHA" or command[1] != SCRIPT_SHA:
        raise ValueError("not an EVALSHA of the bucketcore script")
    return ["EVAL", SCRIPT, *command[2:]]


_CONVERSION_ROUNDS = 3  # another round only if a client changes the plan meanwhile


def recover(commands: list[Any], replies: list[Any]) -> Generator[list[Any], list[Any], None]:
    """What to send again after a first exchange that was not ``settled``.

    Yields each batch to send and is sent its replies: the commands answered
    NOSCRIPT again after SCRIPT LOAD (``reload``), then those that met a
    bucket under another limit once it is converted (``convert``). ``replies``
    is completed in place. The sync and async stores drive it alike, so the
    recovery is written once; the common, settled exchange never builds it.

    >>> commands, replies = [["EVALSHA", SCRIPT_SHA, 0, b"a"]], [1]
    >>> list(recover(commands, replies))  # nothing to recover: nothing to send
    []
    """
    missing = reload_missing(commands, replies)
    if missing:
        merge(replies, missing, (yield reload(commands, missing)))
    for _ in range(_CONVERSION_ROUNDS):  # a plan changed: convert, then ask again
        changed = stale(replies)
        if not changed:
            break
        merge_converted(replies, changed, (yield convert(commands, replies, changed)))
