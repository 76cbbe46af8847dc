"""Store URLs: strict splitting, and passwords never shown (docs/design.md §3)."""

from __future__ import annotations

import pytest

from bucketcore._urls import redacted, secrets_of, split_url
from bucketcore.errors import ConfigurationError

SECRET = "s3cr3t-pw"  # noqa: S105 - a test value that must never be echoed


@pytest.mark.parametrize(
    "url",
    [
        f"redis://:{SECRET}@cache:6379/0",
        f"redis://alice:{SECRET}@cache/0?prefix=app",
        f"rediss://alice:{SECRET}@cache/0",
        f"redis+sentinel://:{SECRET}@s1:26379,s2:26379/mymaster/0",
        f"redis://cache/0?password={SECRET}",
        f"redis+sentinel://s1:26379/mymaster?sentinel_password={SECRET}&timeout=1",
        f"unix:///run/redis.sock?password={SECRET}",
        f"redis://:{SECRET}@[::1/0",  # does not even split
        f"redis://:p@{SECRET}@host/0",  # an '@' inside the password
    ],
)
def test_redacted_urls_keep_everything_but_the_secret(url: str) -> None:
    shown = redacted(url)
    assert SECRET not in shown
    assert "***" in shown
    assert shown.split("://")[0] == url.split("://")[0]


def test_a_url_without_secrets_is_unchanged() -> None:
    url = "redis://cache:6379/0?prefix=app&timeout=0.5"
    assert redacted(url) == url
    assert secrets_of(url) == []


def test_secrets_of_finds_each_secret_once() -> None:
    assert secrets_of(f"redis://u:{SECRET}@h/0?sentinel_password=other") == [SECRET, "other"]


@pytest.mark.parametrize(
    "url",
    [
        "redis://[::1/0",
        "redis://host:99999/0",
        "redis://host:abc/0",
        "redis://host/0\x00",
        "redis://ho\nst/0",
        "redis://host/0#fragment",
        b"redis://host/0",
        None,
    ],
)
def test_malformed_urls_are_configuration_errors(url: object) -> None:
    with pytest.raises(ConfigurationError):
        split_url(url)


def test_the_error_for_a_malformed_url_hides_its_password() -> None:
    with pytest.raises(ConfigurationError) as caught:
        split_url(f"redis://:{SECRET}@[::1/0")
    assert SECRET not in str(caught.value)


@pytest.mark.parametrize(
    "url",
    [
        "redis://[::1/0",
        "redis://h/abc",  # a path that is not a db number
        "redis://h/0/1",
        "redis://h/-1",
        "redis://h:0/0",
        "redis://h/0\x00",
        "redis://h/0?timeout=nan",
        "redis://h/0?timeout=-1",
        "redis://h/0?max_connections=%C2%B2",  # '²' is a digit to str.isdigit, not to int()
        "redis://h/0?bogus=1",
        "redis://h/0#frag",
        "unix://",
        "memory://x",
        "memory:///x",
        "memory://?x=1",
        "rocksdb://",
        "rocksdb:///tmp/x?durability=never",
        "rocksdb:///tmp/x?lock_timeout=nan",
        "lmdb://",
        "lmdb:///tmp/x?map_size=-5",
        "memcached://h",
        "",
        "://",
    ],
)
def test_malformed_store_urls_are_configuration_errors(url: str) -> None:
    from bucketcore import Limiter

    with pytest.raises(ConfigurationError):
        Limiter(url).close()


@pytest.mark.parametrize(
    "url",
    [
        "unix:///run/redis/redis.sock",
        "unix:///run/redis/redis.sock?db=2",
        "valkey://cache:6379/0",
        "valkeys://cache:6379/0",
        "redis://cache",
        "redis://cache/",
        "redis://cache/15",
    ],
)
def test_these_store_urls_are_accepted(url: str) -> None:
    # Opening connects lazily: a URL that parses makes a limiter at once.
    from bucketcore import Limiter

    Limiter(url).close()
