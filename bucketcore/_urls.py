"""Store URLs: strict splitting, and the one place passwords are redacted.

A store URL may carry a password (``redis://:secret@host/0``, a sentinel's
``sentinel_password=`` option). Every message, log line, repr and CLI output
that shows a URL shows ``redacted(url)``, so no secret is ever echoed
(docs/design.md §3).

>>> redacted("redis://user:secret@cache:6379/0?password=also&prefix=app")
'redis://user:***@cache:6379/0?password=***&prefix=app'
"""

from __future__ import annotations

import re
from urllib.parse import SplitResult, parse_qsl, urlsplit

from bucketcore.errors import ConfigurationError

__all__ = ["SECRET_OPTIONS", "directory_of", "redacted", "secrets_of", "split_url"]

MASK = "***"

SECRET_OPTIONS = frozenset(
    {"password", "sentinel_password", "ssl_password", "ssl_keyfile_password"}
)
"""Query options whose values are secrets."""

# userinfo "user:password@" inside a netloc (several hosts may follow, as in
# redis+sentinel://:pw@h1:26379,h2:26379/service); the password is what
# lies between the first ':' and the last '@'.
_USERINFO = re.compile(r"^(?P<user>[^:@]*):(?P<password>.*)@(?P<hosts>[^@]*)$", re.DOTALL)
_SECRET_QUERY = re.compile(
    r"(?P<name>(?:^|[?&;])(?:" + "|".join(sorted(SECRET_OPTIONS)) + r")=)(?P<value>[^&;#]*)",
    re.IGNORECASE,
)


def _redact_netloc(netloc: str) -> str:
    match = _USERINFO.match(netloc)
    if match is None or not match["password"]:
        return netloc
    return f"{match['user']}:{MASK}@{match['hosts']}"


def redacted(url: object) -> str:
    """``url`` as text with its password and secret options masked.

    Works on strings that do not even split as URLs, so an error about a
    malformed URL can quote it safely.

    >>> redacted("redis://:pw@[::1/0")
    'redis://:***@[::1/0'
    >>> redacted("memory://")
    'memory://'
    """
    text = url.geturl() if isinstance(url, SplitResult) else str(url)
    scheme, sep, rest = text.partition("://")
    if not sep:
        return _SECRET_QUERY.sub(lambda m: m["name"] + MASK, text)
    netloc_end = len(rest)
    for stop in "/?#":
        found = rest.find(stop)
        if found != -1:
            netloc_end = min(netloc_end, found)
    netloc, tail = rest[:netloc_end], rest[netloc_end:]
    tail = _SECRET_QUERY.sub(lambda m: m["name"] + MASK, tail)
    return f"{scheme}{sep}{_redact_netloc(netloc)}{tail}"


def secrets_of(url: str) -> list[str]:
    """The secret strings a URL carries (to scrub them from foreign messages).

    >>> secrets_of("redis://u:pw@h/0?sentinel_password=s2")
    ['pw', 's2']
    """
    found: list[str] = []
    _scheme, sep, rest = url.partition("://")
    netloc = rest.split("/", 1)[0].split("?", 1)[0] if sep else ""
    match = _USERINFO.match(netloc)
    if match is not None and match["password"]:
        found.append(match["password"])
    query = url.partition("?")[2].partition("#")[0]
    for name, value in parse_qsl(query, keep_blank_values=True):
        if name.lower() in SECRET_OPTIONS and value:
            found.append(value)
    return found


def split_url(url: object) -> SplitResult:
    """Split a store URL, refusing what ``urlsplit`` would accept or mangle.

    >>> split_url("redis://cache:6379/0").hostname
    'cache'
    >>> split_url("redis://[::1/0")
    Traceback (most recent call last):
    ...
    bucketcore.errors.ConfigurationError: malformed store URL 'redis://[::1/0': Invalid IPv6 URL
    """
    if type(url) is not str:
        raise ConfigurationError(f"a store URL must be a str, got {type(url).__name__}")
    shown = redacted(url)
    if any(ord(char) < 0x20 or ord(char) == 0x7F for char in url):
        raise ConfigurationError(f"a store URL may not contain control characters: {shown!r}")
    try:
        parts = urlsplit(url)
        if "," not in parts.netloc:  # several hosts (sentinels) are checked by their backend
            parts.port  # noqa: B018 - validates the port, raising ValueError if it is bad
    except ValueError as exc:
        raise ConfigurationError(f"malformed store URL {shown!r}: {exc}") from None
    if parts.fragment:
        raise ConfigurationError(f"a store URL takes no #fragment: {shown!r}")
    return parts


def directory_of(url: SplitResult) -> str:
    """The directory a store URL names: ``scheme:///absolute`` or ``scheme://./relative``.

    >>> directory_of(urlsplit("lmdb://./data/limits")), directory_of(urlsplit("rocksdb:///var/x"))
    ('./data/limits', '/var/x')
    """
    scheme = url.scheme.lower()
    if url.netloc in ("", "localhost"):
        path = url.path
    elif url.netloc in (".", ".."):
        path = url.netloc + url.path
    else:
        raise ConfigurationError(
            f"{scheme} URL {redacted(url)!r}: use {scheme}:///absolute/path or "
            f"{scheme}://./relative/path"
        )
    if path in ("", "/", ".", "..", "./", "../"):
        raise ConfigurationError(f"{scheme} URL {redacted(url)!r} names no directory")
    return path
