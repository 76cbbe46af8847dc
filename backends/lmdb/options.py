"""``lmdb://`` URLs and options, checked before anything is opened.

>>> from urllib.parse import urlsplit
>>> path_from_url(urlsplit("lmdb://./data/limits"))
'./data/limits'
>>> map_size_option("-1")
Traceback (most recent call last):
...
bucketcore.errors.ConfigurationError: map_size must be a whole number of bytes >= 65536, got '-1'
"""

from __future__ import annotations

import math
import os
from urllib.parse import SplitResult

from bucketcore.errors import ConfigurationError

__all__ = [
    "DEFAULT_MAP_SIZE",
    "MAX_MAP_SIZE",
    "MIN_MAP_SIZE",
    "bool_option",
    "checked_path",
    "choice_option",
    "map_size_option",
    "path_from_url",
    "seconds_option",
]

MIN_MAP_SIZE = 1 << 16
MAX_MAP_SIZE = 1 << 44  # 16 TiB: the map is address space, not memory
DEFAULT_MAP_SIZE = 1 << 25  # 32 MiB, about 300k buckets; it doubles when full

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def choice_option(name: str, value: object, choices: tuple[str, ...]) -> str:
    """``value`` if it is one of ``choices``.

    >>> choice_option("durability", "sync", ("wal", "sync"))
    'sync'
    """
    if type(value) is not str or value not in choices:
        raise ConfigurationError(f"{name} must be one of {', '.join(choices)}; got {value!r}")
    return value


def seconds_option(name: str, value: object) -> float:
    """A finite number of seconds > 0, from a number or its text.

    >>> seconds_option("flush_interval", "0.5")
    0.5
    """
    if type(value) is str:
        try:
            seconds = float(value)
        except ValueError:
            raise ConfigurationError(f"{name} must be a number of seconds, got {value!r}") from None
    elif type(value) in (int, float):
        seconds = float(value)  # type: ignore[arg-type]
    else:
        raise ConfigurationError(f"{name} must be a number of seconds, got {value!r}")
    if not math.isfinite(seconds) or seconds <= 0:
        raise ConfigurationError(f"{name} must be a finite number of seconds > 0, got {value!r}")
    return seconds


def map_size_option(value: object) -> int:
    """Bytes for the initial map, an int (or its digits) in the allowed range.

    >>> map_size_option("65536")
    65536
    """
    size: int | None = None
    if type(value) is int:
        size = value
    elif type(value) is str and value.isdigit() and value.isascii():
        size = int(value)
    if size is None or not MIN_MAP_SIZE <= size <= MAX_MAP_SIZE:
        raise ConfigurationError(
            f"map_size must be a whole number of bytes >= {MIN_MAP_SIZE}, got {value!r}"
            if size is None or size < MIN_MAP_SIZE
            else f"map_size must be at most {MAX_MAP_SIZE} bytes, got {value!r}"
        )
    return size


def bool_option(name: str, value: object) -> bool:
    """A bool, or its text (true/false, 1/0, yes/no, on/off).

    >>> bool_option("create", "true"), bool_option("create", False)
    (True, False)
    """
    if type(value) is bool:
        return value
    if type(value) is str and value.lower() in _TRUE + _FALSE:
        return value.lower() in _TRUE
    raise ConfigurationError(f"{name} must be true or false, got {value!r}")


def path_from_url(url: SplitResult) -> str:
    """The directory an ``lmdb:///abs`` or ``lmdb://./relative`` URL names."""
    if url.netloc in ("", "localhost"):
        path = url.path
    elif url.netloc in (".", ".."):
        path = url.netloc + url.path
    else:
        raise ConfigurationError(
            f"lmdb URL {url.geturl()!r}: use lmdb:///absolute/path or lmdb://./relative/path"
        )
    if path in ("", "/", ".", "..", "./", "../") or url.fragment:
        raise ConfigurationError(f"lmdb URL {url.geturl()!r} names no directory")
    return path


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
