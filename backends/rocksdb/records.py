"""RocksDB records: the one place that states their layout (docs/design.md §9).

A record is a fixed little-endian struct ``<BqQQQQqQ`` (57 bytes): the format
version (2), the instant the bucket is full again as wall-clock nanoseconds,
a remainder in ``1/units_per_ns`` of a nanosecond (no fraction of a token is
lost), the limit's ``Signature`` (units per ns, token units, burst: a key
whose limit changed between runs reads its tokens back through
``_gcra.converted``), then a drain's hold (its wall-clock deadline and the
length asked; 0 and 0 when none). Version 1 records (``<BqQQ``, 25 bytes, no
signature, no hold) still load, as under the caller's limit.
``bucketcore/_fastpath.c`` writes the common record (the call's limit, no
hold) for rocksdb wal; tests/test_fastpath.py
``test_c_writes_the_record_records_encode_writes`` holds the two equal, and
the C module refuses a ``record_size`` other than 57.

Keys: a tag byte; bucket records are tag + identity length (2 bytes, big
endian) + identity + key, so the mapping is one-to-one whatever the bytes.

>>> from bucketcore import Limit
>>> limit = Limit(1, 1.0)
>>> record = encode(tat=5_000_000_001, owner=limit, offset_ns=10)
>>> len(record), decode(record)[:3]
(57, (5000000011, 0, 1))
>>> restored(limit, 4_500_000_000, decode(record), offset_ns=10).tat
5000000001
>>> record_key(("1/60s", "alice"))
b'\\x01\\x00\\x051/60salice'
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from bucketcore._gcra import Held, converted
from bucketcore._keys import Key, canonical_key
from bucketcore.errors import StoreError
from bucketcore.limit import Limit, Signature
from bucketcore.persistence import BucketId, Loaded

__all__ = [
    "BUCKET_END",
    "BUCKET_TAG",
    "META_KEY",
    "META_VALUE",
    "RECORD",
    "RECORD_V1",
    "VERSION",
    "Record",
    "RecordKeys",
    "bucket_id",
    "decode",
    "encode",
    "record_key",
    "record_prefix",
    "restored",
    "state_under",
]

VERSION = 2
# version, full-at wall ns, remainder, units_per_ns, token_units, burst,
# held-until wall ns, held-for ns (0, 0: no hold)
RECORD = struct.Struct("<BqQQQQqQ")
RECORD_V1 = struct.Struct("<BqQQ")  # version 1: version, full-at wall ns, remainder, units

META_KEY = b"\x00bucketcore-format"
META_VALUE = b"bucketcore records v1"
BUCKET_TAG = b"\x01"
BUCKET_END = b"\x02"

# Record-key prefixes are cached per limit identity; a program that makes
# endless distinct unnamed limits just starts the cache over.
_PREFIX_CACHE_MAX = 4096


def record_prefix(identity: str) -> bytes:
    """The key prefix of every record of one limit identity.

    >>> record_prefix("a")
    b'\\x01\\x00\\x01a'
    """
    name = identity.encode("utf-8", "surrogatepass")
    return BUCKET_TAG + len(name).to_bytes(2, "big") + name


def record_key(bucket: BucketId) -> bytes:
    """The RocksDB key of a bucket (``RecordKeys`` caches the prefix).

    >>> record_key(("a", b"k"))
    b'\\x01\\x00\\x01ak'
    """
    identity, key = bucket
    data = key.encode("utf-8") if type(key) is str else key
    return record_prefix(identity) + data  # type: ignore[operator]


def bucket_id(key_bytes: bytes) -> BucketId | None:
    """The bucket a record key names, or None for a key that is not ours.

    >>> bucket_id(b"\\x01\\x00\\x01ak"), bucket_id(b"\\x00meta")
    (('a', 'k'), None)
    """
    if len(key_bytes) < 3 or key_bytes[:1] != BUCKET_TAG:
        return None
    end = 3 + int.from_bytes(key_bytes[1:3], "big")
    if len(key_bytes) < end:
        return None
    try:
        identity = key_bytes[3:end].decode("utf-8", "surrogatepass")
    except UnicodeDecodeError:
        return None
    return identity, canonical_key(key_bytes[end:])


class RecordKeys:
    """Record keys with the prefix of each identity cached.

    ``prefixes`` is the dict the C path reads (an identity it does not find
    there goes to Python, which fills it).

    >>> RecordKeys().key("a", "k")
    b'\\x01\\x00\\x01ak'
    """

    def __init__(self) -> None:
        self.prefixes: dict[str, bytes] = {}

    def key(self, identity: str, key: Key) -> bytes:
        prefix = self.prefixes.get(identity)
        if prefix is None:
            if len(self.prefixes) >= _PREFIX_CACHE_MAX:
                self.prefixes.clear()
            prefix = self.prefixes[identity] = record_prefix(identity)
        return prefix + (key.encode("utf-8") if type(key) is str else key)  # type: ignore[operator]


class Record(NamedTuple):
    """A decoded record, its times on the wall clock; ``signature`` None: version 1."""

    full_at_ns: int
    remainder: int  # in 1/units of a nanosecond
    units: int
    signature: Signature | None
    held_until_ns: int  # with held_for_ns 0: no hold
    held_for_ns: int


def encode(tat: int, owner: Limit | Held, offset_ns: int) -> bytes:
    """A bucket as memory keeps it, ``[tat, owner]``, as a record.

    ``tat`` is in monotonic units of ``owner``'s limit; ``offset_ns`` is
    wall - monotonic now.

    >>> decode(encode(7, Limit(1, 0.5, burst=2), offset_ns=0))
    Record(full_at_ns=7, remainder=0, units=1, signature=Signature(units_per_ns=1, \
token_units=500000000, burst=2), held_until_ns=0, held_for_ns=0)
    """
    if type(owner) is Held:
        units, token_units, burst = owner.limit.signature
        until_ns, for_ns = owner.until_ns + offset_ns, owner.for_ns
    else:
        units, token_units, burst = owner.signature  # type: ignore[union-attr]
        until_ns = for_ns = 0
    full_at_ns, remainder = divmod(tat, units)
    try:
        return RECORD.pack(
            VERSION, full_at_ns + offset_ns, remainder, units, token_units, burst, until_ns, for_ns
        )
    except struct.error as exc:
        raise StoreError(f"bucket state out of the record's range: {exc}") from exc


def decode(value: bytes) -> Record:
    """A record's fields; ValueError names what is wrong.

    >>> decode(b"")
    Traceback (most recent call last):
    ...
    ValueError: record is 0 bytes, expected 57 (or 25, version 1)
    """
    if len(value) == RECORD.size:
        version, full_at_ns, remainder, units, token_units, burst, until, length = RECORD.unpack(
            value
        )
        if version != VERSION:
            raise ValueError(f"unknown record format version {version}")
        if token_units < 1 or burst < 1:
            raise ValueError(f"a signature of {token_units} token units, burst {burst}")
        signature: Signature | None = Signature(units, token_units, burst)
    elif len(value) == RECORD_V1.size:
        version, full_at_ns, remainder, units = RECORD_V1.unpack(value)
        if version != 1:
            raise ValueError(f"unknown record format version {version} (of version 1's size)")
        signature, until, length = None, 0, 0
    else:
        raise ValueError(
            f"record is {len(value)} bytes, expected {RECORD.size} (or {RECORD_V1.size}, version 1)"
        )
    if units < 1 or remainder >= units:
        raise ValueError(f"remainder {remainder} is not a fraction of 1/{units} ns")
    return Record(full_at_ns, remainder, units, signature, until, length)


def restored(limit: Limit, now_ns: int, record: Record, offset_ns: int) -> Loaded:
    """A record's state under ``limit`` at monotonic ``now_ns``; ``offset_ns`` = wall - now.

    A clock step between runs can move the instant anywhere: before ``now``
    it is simply a full bucket (never more), and it is cut to an empty
    bucket's wait (or its hold's: never longer). A version 1 record is taken
    as ``limit``'s, a remainder in other units rounded up (the caller waits
    the longer side of a unit).

    >>> old = RECORD_V1.pack(1, 10**12, 0, 1)
    >>> restored(Limit(1, 1.0), now_ns=0, record=decode(old), offset_ns=0)
    Loaded(tat=1000000000, held=None)
    """
    full_at_ns = record.full_at_ns - offset_ns
    if record.signature is None:
        units_per_ns = limit.units_per_ns
        remainder = record.remainder
        if record.units != units_per_ns:
            remainder = -(-remainder * units_per_ns // record.units)
        tat = full_at_ns * units_per_ns + remainder
        now = now_ns * units_per_ns
        return Loaded(None if tat <= now else min(tat, now + limit.capacity_units), None)
    held = (record.held_until_ns - offset_ns, record.held_for_ns) if record.held_for_ns else None
    tat = full_at_ns * record.units + record.remainder
    return state_under(limit, now_ns, tat, record.signature, held)


def state_under(
    limit: Limit, now_ns: int, tat: int, signature: Signature, held: tuple[int, int] | None
) -> Loaded:
    """A state kept under ``signature`` (and a hold: deadline, length) read under ``limit``.

    Converted (``_gcra.converted``) and clamped at ``now_ns``, as
    ``_buckets.adopt`` does for a bucket in memory: the hold is kept
    while the bucket is beyond empty, its deadline never more than its
    length ahead.

    >>> one = Limit(1, 1.0)
    >>> state_under(one, 0, 9 * 10**9, one.signature, (9 * 10**9, 9 * 10**9)).held.until_ns
    9000000000
    """
    held_until_ns = None if held is None else min(held[0], now_ns + held[1])
    state = converted(signature, limit.signature, tat, now_ns, held_until_ns)
    now = now_ns * limit.units_per_ns
    if state is None or state <= now:
        return Loaded(None, None)
    if held is None or held_until_ns is None or state <= now + limit.capacity_units:
        return Loaded(state, None)
    return Loaded(state, Held(limit, held_until_ns, held[1]))
