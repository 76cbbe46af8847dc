"""A password in a store URL is never echoed: errors, logs, reprs, CLI output.

docs/design.md §3. Every place that shows a URL goes through
``bucketcore._urls.redacted``; this test opens, fails and inspects with a
password in the URL and greps everything that came out.
"""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bucketcore import Limit, Limiter
from bucketcore.cli import main
from bucketcore.errors import BucketError
from support.servers import RedisProcess, free_port

SECRET = "hunter2-very-secret"  # noqa: S105 - the value this test looks for everywhere
ONCE = Limit(1, 3600.0)


def _everything(caplog: pytest.LogCaptureFixture, *texts: str) -> str:
    records = [record.getMessage() for record in caplog.records]
    return "\n".join([*texts, *records])


def test_a_bad_url_with_a_password_is_refused_without_echoing_it() -> None:
    for url in (
        f"redis://:{SECRET}@[::1/0",
        f"redis://:{SECRET}@host/abc",
        f"redis://user:{SECRET}@host/0?on_error=maybe",
        f"redis://host/0?password={SECRET}&bogus=1",
        f"rediss://:{SECRET}@host/0?ssl_cert_reqs=sometimes",
        f"memcached://:{SECRET}@host",
    ):
        with pytest.raises(BucketError) as caught:
            Limiter(url)
        assert SECRET not in str(caught.value), url
        assert SECRET not in repr(caught.value), url


@pytest.mark.redis
def test_an_unreachable_redis_fails_and_degrades_without_echoing_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    pytest.importorskip("bucketcore.backends.redis", reason="the redis backend is not here")
    caplog.set_level(logging.DEBUG)
    closed_port = free_port()
    url = f"redis://:{SECRET}@127.0.0.1:{closed_port}/0?timeout=0.2&connect_timeout=0.2"
    texts: list[str] = []
    with Limiter(url) as limiter:
        texts.append(repr(limiter.store))
        with pytest.raises(BucketError) as caught:
            limiter.acquire("k", ONCE)
        texts += [str(caught.value), repr(caught.value)]
    with Limiter(url + "&on_error=allow") as degraded:
        assert degraded.acquire("k", ONCE).degraded
    assert SECRET not in _everything(caplog, *texts)


@pytest.mark.redis
def test_the_cli_shows_the_url_without_its_password(
    redis_process_factory: type[RedisProcess], caplog: pytest.LogCaptureFixture
) -> None:
    pytest.importorskip("bucketcore.backends.redis", reason="the redis backend is not here")
    server: Any = redis_process_factory("--requirepass", SECRET)
    server.start()
    port = str(server.url).rsplit(":", 1)[1].split("/")[0]
    url = f"redis://:{SECRET}@127.0.0.1:{port}/0"
    wrong = f"redis://:not-{SECRET}@127.0.0.1:{port}/0"
    outputs = []
    for argv in (
        ["inspect", url, "alice", "general=7/30s"],
        ["inspect", url, "alice", "general=7/30s", "--json"],
        ["reset", url, "alice", "general=7/30s"],
        ["demo", url, "--limit", "2/s", "-n", "3"],
    ):
        out = io.StringIO()
        assert main(argv, out=out) == 0, argv
        outputs.append(out.getvalue())
    assert "***" in outputs[0]
    assert json.loads(outputs[1])["url"] == f"redis://:***@127.0.0.1:{port}/0"
    # A failing call (wrong password) from the installed command: stderr too.
    failed = subprocess.run(
        [str(Path(sys.executable).parent / "bucketcore"), "inspect", wrong, "a", "1/s"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert failed.returncode != 0
    assert SECRET not in _everything(caplog, *outputs, failed.stdout, failed.stderr)
