"""RocksDB records: the one place that states their layout (docs/design.md §9).

A record is a fixed little-endian struct ``<BqQQ``: the format version, the
instant the bucket is full again as wall-clock nanoseconds, a remainder in
``1/units_per_ns`` of a nanosecond (no fraction of a token is lost), and that
denominator (so a record stays meaningful if a named limit's rate changes
between runs). ``bucketcore/_fastpath.c`` writes the same 25 bytes for rocksdb
wal; tests/test_fastpath.py ``test_c_writes_the_record_records_encode_writes``
holds the two equal, and the C module refuses a ``record_size`` other than 25.

Keys: a tag byte; bucket records are tag + identity length (2 bytes, big
endian) + identity + key, so the mapping is one-to-one whatever the bytes.

>>> from bucketcore import Limit
>>> record = encode(tat=5_000_000_001, units_per_ns=1, offset_ns=10)
>>> len(record), decode(record)
(25, (5000000011, 0, 1))
>>> record_key(("1/60s", "alice"))
b'\\x01\\x00\\x051/60salice'
"""

from __future__ import annotations

import struct

from bucketcore._keys import Key, canonical_key
from bucketcore.errors import StoreError
from bucketcore.limit import Limit
from bucketcore.persistence import BucketId

__all__ = [
    "BUCKET_END",
    "BUCKET_TAG",
    "META_KEY",
    "META_VALUE",
    "RECORD",
    "VERSION",
    "RecordKeys",
    "bucket_id",
    "decode",
    "encode",
    "record_key",
    "record_prefix",
    "restored",
]

VERSION = 1
RECORD = struct.Struct("<BqQQ")  # version, full-at wall ns, remainder, units_per_ns

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


def encode(tat: int, units_per_ns: int, offset_ns: int) -> bytes:
    """A tat (monotonic units) as a record; ``offset_ns`` = wall - monotonic now.

    >>> decode(encode(7, units_per_ns=2, offset_ns=0))
    (3, 1, 2)
    """
    full_at_ns, remainder = divmod(tat, units_per_ns)
    try:
        return RECORD.pack(VERSION, full_at_ns + offset_ns, remainder, units_per_ns)
    except struct.error as exc:
        raise StoreError(f"bucket state out of the record's range: {exc}") from exc


def decode(value: bytes) -> tuple[int, int, int]:
    """(full_at_wall_ns, remainder, units_per_ns); ValueError names what is wrong.

    >>> decode(b"")
    Traceback (most recent call last):
    ...
    ValueError: record is 0 bytes, expected 25
    """
    if len(value) != RECORD.size:
        raise ValueError(f"record is {len(value)} bytes, expected {RECORD.size}")
    version, full_at_ns, remainder, units = RECORD.unpack(value)
    if version != VERSION:
        raise ValueError(f"unknown record format version {version}")
    if units < 1 or remainder >= units:
        raise ValueError(f"remainder {remainder} is not a fraction of 1/{units} ns")
    return full_at_ns, remainder, units


def restored(limit: Limit, now_ns: int, full_at_ns: int, remainder: int, units: int) -> int | None:
    """A bucket's tat in ``limit``'s units, clamped to [full, empty] at ``now_ns``.

    ``full_at_ns + remainder / units`` is the monotonic instant the bucket is
    full. A clock step between runs can move it anywhere: before ``now`` it
    is simply a full bucket (never more), and it is cut to ``now + capacity``
    (an empty bucket's wait, never longer). A remainder in other units is
    rounded up: the caller waits the longer side of a unit.

    >>> restored(Limit(1, 1.0), now_ns=0, full_at_ns=10**12, remainder=0, units=1)
    1000000000
    """
    units_per_ns = limit.units_per_ns
    if units != units_per_ns:
        remainder = -(-remainder * units_per_ns // units)
    tat = full_at_ns * units_per_ns + remainder
    now = now_ns * units_per_ns
    if tat <= now:
        return None
    return min(tat, now + limit.capacity_units)
