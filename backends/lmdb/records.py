"""What an ``lmdb://`` environment holds: bucket records, their keys, the time anchor.

Pure functions of bytes and integers: no LMDB, no clock reads.

**Time.** Records hold *anchored* nanoseconds: the host's monotonic clock
plus an offset that the first process of each boot writes once into the
environment (``ANCHOR_KEY``: the boot id and ``wall - monotonic`` at that
moment). On Linux ``CLOCK_MONOTONIC`` is one clock for every process of a
boot, so all processes on the host decide on one timeline, and a wall-clock
step (NTP, an operator) changes nothing within a boot. After a reboot the
boot id differs, the next opener writes a new anchor from the wall clock,
and old records keep their meaning to within the wall clock's error. Every
load goes through ``_gcra.clamped``: whatever the clocks did, a bucket
reads as at most full and at most empty (no wait longer than an empty
bucket's).

**Records.** A fixed little-endian struct: format version, the anchored
instant the bucket is full again in whole nanoseconds plus a remainder in
``1 / units`` of a nanosecond (no fraction of a token is lost), and the
limit's ``Signature`` (units, token units, burst: a key whose limit changed
reads its tokens back through ``_gcra.converted``), then a drain's hold (the
anchored deadline and the length asked; 0 and 0 when none). Version 1
records (no signature, no hold) still load, as under the caller's limit.

**Keys.** ``BUCKET_TAG + len(identity) + identity + key bytes``: the length
prefix makes (identity, key) -> record key one-to-one. LMDB keys stop at 511
bytes, keys at 4096: a longer record key is stored under ``HASHED_TAG +
blake2b-256(record key)`` with the full record key after the struct in the
value, compared on every load, so the mapping stays one-to-one (a digest
collision would be refused as ``CorruptState``, never shared).

>>> from bucketcore.limit import Limit
>>> limit = Limit(3, 1.0)
>>> tat = 5 * 10**9 * limit.units_per_ns          # full again at 5 s
>>> state_from_record(encode(tat, limit.signature), limit, now_ns=4 * 10**9).tat == tat
True
"""

from __future__ import annotations

import hashlib
import os
import struct
import time
import uuid
from typing import NamedTuple

from bucketcore._gcra import clamped, converted
from bucketcore.errors import CorruptState
from bucketcore.limit import Limit, Signature

__all__ = [
    "ANCHOR_KEY",
    "BUCKET_TAG",
    "FORMAT_KEY",
    "FORMAT_VALUE",
    "HASHED_TAG",
    "RECORD",
    "RECORD_V1",
    "VERSION",
    "Anchor",
    "Loaded",
    "Value",
    "anchor_for",
    "boot_id",
    "encode",
    "is_full_record",
    "record_keys",
    "record_prefix",
    "state_from_record",
]

VERSION = 2
# version, full_at_ns, remainder, units, token_units, burst, held_until_ns, held_for_ns
RECORD = struct.Struct("<BqQQQQqQ")
RECORD_V1 = struct.Struct("<BqQQ")  # version, full_at_ns, remainder, units
_RECORD_SIZE = RECORD.size
_unpack = RECORD.unpack
_ANCHOR_VERSION = 1
_ANCHOR = struct.Struct("<B16sq")  # version, boot id, offset_ns (anchored = monotonic + offset)

FORMAT_KEY = b"\x00bucketcore-format"
FORMAT_VALUE = b"bucketcore lmdb records v1"
ANCHOR_KEY = b"\x00bucketcore-anchor"
BUCKET_TAG = b"\x01"
HASHED_TAG = b"\x02"
BUCKETS_END = b"\x03"  # every bucket record key sorts before it

_BOOT_ID_FILE = "/proc/sys/kernel/random/boot_id"

Value = bytes | memoryview  # what a transaction's get() returns (bytes unless buffers=True)


# -- records -------------------------------------------------------------------


class Loaded(NamedTuple):
    """A record read at an instant under the caller's limit (``state_from_record``)."""

    tat: int | None  # in the caller's units, converted and clamped; None: full
    held: tuple[int, int] | None  # a drain's (deadline, length) still holding it empty


def encode(tat: int, signature: Signature, held: tuple[int, int] | None = None) -> bytes:
    """A bucket's state (its tat in ``signature``'s units, anchored) as a record.

    >>> RECORD.unpack(encode(7, Limit(1, 1.0, burst=2).signature))[:4]
    (2, 7, 0, 1)
    """
    units, token_units, burst = signature
    full_at_ns, remainder = (tat, 0) if units == 1 else divmod(tat, units)
    until, length = (0, 0) if held is None else held
    return RECORD.pack(VERSION, full_at_ns, remainder, units, token_units, burst, until, length)


def _fields(value: Value, full_key: bytes) -> tuple[int, ...]:
    size = RECORD_V1.size if len(value) == RECORD_V1.size + len(full_key) else RECORD.size
    if len(value) != size + len(full_key) or value[size:] != full_key:
        raise CorruptState(f"a bucket record is {len(value)} bytes or names another bucket")
    fields: tuple[int, ...] = (RECORD_V1 if size == RECORD_V1.size else RECORD).unpack_from(value)
    if fields[0] != (1 if size == RECORD_V1.size else VERSION):
        raise CorruptState(f"unknown bucket record format version {fields[0]}")
    units, remainder = fields[3], fields[2]
    if units < 1 or remainder >= units or (size == RECORD.size and min(fields[4:6]) < 1):
        raise CorruptState(f"bucket record remainder {remainder} is not a fraction of 1/{units}")
    return fields


def state_from_record(value: Value, limit: Limit, now_ns: int, full_key: bytes = b"") -> Loaded:
    """The stored state under ``limit`` at anchored ``now_ns``: converted, clamped.

    ``full_key`` is the record key stored after the struct (hashed keys). A
    record kept under another limit goes through ``_gcra.converted``; a
    version 1 record is taken as ``limit``'s, its remainder rounded up.

    >>> state_from_record(encode(3 * 10**9, Limit(1, 1.0).signature), Limit(2, 1.0), 0).tat
    1000000000
    """
    if len(value) == _RECORD_SIZE and not full_key:  # the common case, checked inline
        fields = _unpack(value)
        if fields[0] != VERSION or fields[3] < 1 or fields[2] >= fields[3] or min(fields[4:6]) < 1:
            fields = _fields(value, full_key)  # raises, naming what is wrong
    else:
        fields = _fields(value, full_key)
    units_per_ns = limit.units_per_ns
    now = now_ns * units_per_ns
    if len(fields) == 4:  # version 1: no signature, no hold
        _, full_at_ns, remainder, units = fields
        if units != units_per_ns:
            remainder = -(-remainder * units_per_ns // units)
        tat = clamped(limit, full_at_ns * units_per_ns + remainder, now)
        return Loaded(None if tat <= now else tat, None)
    _, full_at_ns, remainder, units, token_units, burst, until, length = fields
    held_until = min(until, now_ns + length) if length else None
    stored = full_at_ns * units + remainder
    old = Signature(units, token_units, burst)
    state = converted(old, limit.signature, stored, now_ns, held_until)
    if state is None or state <= now:
        return Loaded(None, None)
    if held_until is None or state <= now + limit.capacity_units:
        return Loaded(state, None)
    return Loaded(state, (held_until, length))


def is_full_record(value: Value, now_ns: int) -> bool:
    """True when a record (of any key) says its bucket is full at anchored ``now_ns``.

    A record that does not parse is never called full: it is reported when
    its bucket is used, not deleted behind anyone's back.

    >>> one = Limit(1, 1.0).signature
    >>> is_full_record(encode(10, one), 10), is_full_record(encode(11, one), 10)
    (True, False)
    """
    if len(value) < RECORD_V1.size:
        return False
    version, full_at_ns, remainder, units = RECORD_V1.unpack_from(value)
    if version not in (1, VERSION) or units < 1 or remainder >= units:
        return False
    full: bool = full_at_ns < now_ns or (full_at_ns == now_ns and remainder == 0)
    return full


# -- keys ----------------------------------------------------------------------


def record_prefix(identity: str) -> bytes:
    """The part of a record key that names the limit (length-prefixed).

    >>> record_prefix("n:api")
    b'\\x01\\x00\\x05n:api'
    """
    name = identity.encode("utf-8", "surrogatepass")
    return BUCKET_TAG + len(name).to_bytes(2, "big") + name


def record_keys(prefix: bytes, key: bytes, max_key_size: int) -> tuple[bytes, bytes]:
    """(LMDB key, what the value carries after the struct) for one bucket.

    >>> record_keys(b"\\x01\\x00\\x01a", b"alice", 511)
    (b'\\x01\\x00\\x01aalice', b'')
    >>> db_key, full = record_keys(b"\\x01\\x00\\x01a", b"x" * 600, 511)
    >>> len(db_key), len(full)
    (33, 604)
    """
    full = prefix + key
    if len(full) <= max_key_size:
        return full, b""
    return HASHED_TAG + hashlib.blake2b(full, digest_size=32).digest(), full


# -- the time anchor -------------------------------------------------------------


class Anchor(NamedTuple):
    """Which boot wrote the anchor, and ``anchored_ns - monotonic_ns`` in it."""

    boot: bytes
    offset_ns: int

    def encode(self) -> bytes:
        """The stored form.

        >>> Anchor.decode(Anchor(b"b" * 16, 5).encode())
        Anchor(boot=b'bbbbbbbbbbbbbbbb', offset_ns=5)
        """
        return _ANCHOR.pack(_ANCHOR_VERSION, self.boot, self.offset_ns)

    @staticmethod
    def decode(value: Value) -> Anchor:
        if len(value) != _ANCHOR.size:
            raise CorruptState(f"the time anchor is {len(value)} bytes, expected {_ANCHOR.size}")
        version, boot, offset_ns = _ANCHOR.unpack(value)
        if version != _ANCHOR_VERSION:
            raise CorruptState(f"unknown time anchor format version {version}")
        return Anchor(boot, offset_ns)


def anchor_for(
    stored: Value | None, boot: bytes, monotonic_ns: int, wall_ns: int
) -> tuple[Anchor, bool]:
    """The anchor to decide with, and whether it must be written (a new boot).

    >>> old = Anchor(b"a" * 16, 100)
    >>> anchor_for(old.encode(), b"a" * 16, monotonic_ns=5, wall_ns=999)
    (Anchor(boot=b'aaaaaaaaaaaaaaaa', offset_ns=100), False)
    >>> anchor_for(old.encode(), b"b" * 16, monotonic_ns=5, wall_ns=999)
    (Anchor(boot=b'bbbbbbbbbbbbbbbb', offset_ns=994), True)
    """
    if stored is not None:
        anchor = Anchor.decode(stored)
        if anchor.boot == boot:
            return anchor, False
    return Anchor(boot, wall_ns - monotonic_ns), True


def boot_id() -> bytes:
    """16 bytes naming this boot of the host (the same in every process).

    Linux says it in ``/proc``. Elsewhere the boot instant, estimated as
    wall minus monotonic time and rounded to 10 s, stands in: two processes
    that round differently write anchors that differ by that estimate's
    error, milliseconds, and both stay clamped.

    >>> len(boot_id())
    16
    """
    try:
        with open(_BOOT_ID_FILE, encoding="ascii") as file:
            return uuid.UUID(file.read().strip()).bytes
    except (OSError, ValueError):
        booted_s = (time.time_ns() - time.monotonic_ns()) // 10**10
        return hashlib.blake2b(
            f"{os.uname().nodename}:{booted_s}".encode(), digest_size=16
        ).digest()
