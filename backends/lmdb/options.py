"""``lmdb://`` URLs and options, checked before anything is opened.

>>> map_size_option("-1")
Traceback (most recent call last):
...
bucketcore.errors.ConfigurationError: option map_size must be an int from 65536 to ... got '-1'
"""

from __future__ import annotations

import os

from bucketcore._options import count
from bucketcore.errors import ConfigurationError

__all__ = [
    "DEFAULT_MAP_SIZE",
    "MAX_MAP_SIZE",
    "MIN_MAP_SIZE",
    "checked_path",
    "map_size_option",
]

MIN_MAP_SIZE = 1 << 16
MAX_MAP_SIZE = 1 << 44  # 16 TiB: the map is address space, not memory
DEFAULT_MAP_SIZE = 1 << 25  # 32 MiB, about 300k buckets; it doubles when full


def map_size_option(value: object) -> int:
    """Bytes for the initial map, an int (or its digits) in the allowed range.

    >>> map_size_option("65536")
    65536
    """
    return count("map_size", value, minimum=MIN_MAP_SIZE, maximum=MAX_MAP_SIZE)


def checked_path(path: object, *, create: bool) -> str:
    """The absolute directory for the environment; its parent must exist unless ``create``.

    >>> checked_path("/no/such/parent/limits", create=False)
    Traceback (most recent call last):
    ...
    bucketcore.errors.ConfigurationError: the directory for lmdb:///no/such/parent/limits ...
    """
    if not isinstance(path, str | os.PathLike) or isinstance(path, bytes):
        raise ConfigurationError(f"path must be a str or path, got {path!r}")
    absolute = os.path.abspath(os.fspath(path))
    if "\x00" in absolute:
        raise ConfigurationError(f"path contains a NUL byte: {path!r}")
    if os.path.exists(absolute) and not os.path.isdir(absolute):
        raise ConfigurationError(f"lmdb://{absolute} is a file; an LMDB store is a directory")
    parent = os.path.dirname(absolute)
    if not os.path.isdir(parent):
        if not create:
            raise ConfigurationError(
                f"the directory for lmdb://{absolute} does not exist: {parent} "
                "(pass create=true to make it)"
            )
        try:
            os.makedirs(parent, exist_ok=True)
        except OSError as exc:
            raise ConfigurationError(
                f"cannot create {parent} for lmdb://{absolute}: {exc}"
            ) from exc
    return absolute
