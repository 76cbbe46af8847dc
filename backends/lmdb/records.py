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
``1 / units`` of a nanosecond (no fraction of a token is lost), and
``units`` itself (so a named limit whose rate changes reads its tokens
back in the new units, rounded towards waiting).

**Keys.** ``BUCKET_TAG + len(identity) + identity + key bytes``: the length
prefix makes (identity, key) -> record key one-to-one. LMDB keys stop at 511
bytes, keys at 4096: a longer record key is stored under ``HASHED_TAG +
blake2b-256(record key)`` with the full record key after the struct in the
value, compared on every load, so the mapping stays one-to-one (a digest
collision would be refused as ``CorruptState``, never shared).

>>> from bucketcore.limit import Limit
>>> limit = Limit(3, 1.0)
>>> value = encode(5 * 10**9, limit.units_per_ns)
>>> tat_from_record(value, limit) == 5 * 10**9
True
"""

from __future__ import annotations

import hashlib
import os
import struct
import time
import uuid
from typing import NamedTuple

from bucketcore.errors import CorruptState
from bucketcore.limit import Limit

__all__ = [
    "ANCHOR_KEY",
    "BUCKET_TAG",
    "FORMAT_KEY",
    "FORMAT_VALUE",
    "HASHED_TAG",
    "RECORD",
    "VERSION",
    "Anchor",
    "Value",
    "anchor_for",
    "boot_id",
    "encode",
    "is_full_record",
    "record_keys",
    "record_prefix",
    "tat_from_record",
]

VERSION = 1
RECORD = struct.Struct("<BqQQ")  # version, full_at_ns, remainder, units
_RECORD_SIZE = RECORD.size
_unpack = RECORD.unpack
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


def encode(tat: int, units_per_ns: int) -> bytes:
    """A bucket's state (its tat in ``units_per_ns`` units, anchored) as a record.

    >>> RECORD.unpack(encode(7, 2))
    (1, 3, 1, 2)
    """
    if units_per_ns == 1:
        return RECORD.pack(VERSION, tat, 0, 1)
    full_at_ns, remainder = divmod(tat, units_per_ns)
    return RECORD.pack(VERSION, full_at_ns, remainder, units_per_ns)


def _fields(value: Value, full_key: bytes) -> tuple[int, int, int]:
    if len(value) != RECORD.size + len(full_key) or value[RECORD.size :] != full_key:
        raise CorruptState(f"a bucket record is {len(value)} bytes or names another bucket")
    version, full_at_ns, remainder, units = RECORD.unpack_from(value)
    if version != VERSION:
        raise CorruptState(f"unknown bucket record format version {version}")
    if units < 1 or remainder >= units:
        raise CorruptState(f"bucket record remainder {remainder} is not a fraction of 1/{units}")
    return full_at_ns, remainder, units


def tat_from_record(value: Value, limit: Limit, full_key: bytes = b"") -> int:
    """The stored tat in ``limit``'s units (``_gcra`` clamps it against now).

    ``full_key`` is the record key stored after the struct (hashed keys).
    A remainder in other units is rounded up: the caller waits the longer side.

    >>> tat_from_record(encode(3, 2), Limit(1, 1.0))   # 1.5 ns, in 1-ns units
    2
    """
    if len(value) == _RECORD_SIZE and not full_key:  # the common case, checked inline
        version, full_at_ns, remainder, units = _unpack(value)
        if version != VERSION or units < 1 or remainder >= units:
            _fields(value, full_key)  # raises, naming what is wrong
    else:
        full_at_ns, remainder, units = _fields(value, full_key)
    units_per_ns = limit.units_per_ns
    if units != units_per_ns:
        remainder = -(-remainder * units_per_ns // units)
    tat: int = full_at_ns * units_per_ns + remainder
    return tat


def is_full_record(value: Value, now_ns: int) -> bool:
    """True when a record (of any key) says its bucket is full at anchored ``now_ns``.

    A record that does not parse is never called full: it is reported when
    its bucket is used, not deleted behind anyone's back.

    >>> is_full_record(encode(10, 1), 10), is_full_record(encode(11, 1), 10)
    (True, False)
    """
    if len(value) < RECORD.size:
        return False
    version, full_at_ns, remainder, units = RECORD.unpack_from(value)
    if version != VERSION or units < 1 or remainder >= units:
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
        return _ANCHOR.pack(VERSION, self.boot, self.offset_ns)

    @staticmethod
    def decode(value: Value) -> Anchor:
        if len(value) != _ANCHOR.size:
            raise CorruptState(f"the time anchor is {len(value)} bytes, expected {_ANCHOR.size}")
        version, boot, offset_ns = _ANCHOR.unpack(value)
        if version != VERSION:
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
