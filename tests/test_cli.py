"""The bucketcore command line: in-process on memory://, as the console script elsewhere."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from bucketcore import Limit, Limiter
from bucketcore.cli import main
from support.servers import RedisProcess, free_port

SCRIPT = Path(sys.executable).parent / "bucketcore"


def run(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    status = main(list(argv), out=out)
    return status, out.getvalue()


def script(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SCRIPT), *argv], capture_output=True, text=True, timeout=60, check=False
    )


def test_inspect_a_fresh_bucket_as_text() -> None:
    status, out = run("inspect", "memory://", "user:alice", "general=7/30s")
    assert status == 0
    assert out.splitlines() == [
        "general=7/30s  key 'user:alice'  on memory://",
        "  tokens       7 of 7",
        "  next token   now",
        "  full in      0 s",
    ]


def test_inspect_several_limits_as_json() -> None:
    status, out = run("inspect", "memory://", "k", "10/s burst 20", "api=100/hour", "--json")
    assert status == 0
    report = json.loads(out)
    assert report["url"] == "memory://"
    assert report["key"] == "k"
    assert [(b["limit"], b["name"], b["tokens"], b["burst"]) for b in report["buckets"]] == [
        ("10/1s burst 20", None, 20, 20),
        ("api=100/3600s", "api", 100, 100),
    ]


def test_reset_names_what_it_reset() -> None:
    status, out = run("reset", "memory://", "user:alice", "general=7/30s")
    assert status == 0
    assert out == "reset general=7/30s for key 'user:alice' on memory://\n"


def test_demo_drains_a_bucket_and_shows_the_headers() -> None:
    status, out = run("demo", "--limit", "3/minute", "-n", "5")
    assert status == 0
    lines = out.splitlines()
    assert lines[0] == "5 requests against 3/60s on memory://"
    assert [line.split()[1] for line in lines[1:6]] == ["allowed"] * 3 + ["denied"] * 2
    assert "  Retry-After: 20" in lines


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["inspect", "nosuch://x", "k", "1/s"], "unknown store URL scheme in 'nosuch://x'"),
        (["inspect", "memory://", "k", "seven a day"], "malformed limit 'seven a day'"),
        (["inspect", "memory://", "k", "0/s"], "tokens must be >= 1"),
        (["inspect", "memory://", "k", "=7/30s"], "empty pool name"),
        (["reset", "memory://", "k" * 5000, "1/s"], "more than 4096"),
        (["inspect", "memory://?nonsense=1", "k", "1/s"], "nonsense"),
        (["demo", "-n", "0"], "--requests must be >= 1"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out = run(*argv)
    err = capsys.readouterr().err
    assert status == 2
    assert out == ""
    assert err.count("\n") == 1
    assert err.startswith("bucketcore: error: ")
    assert message in err


def test_a_usage_error_is_one_line_too(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["inspect", "memory://"])
    err = capsys.readouterr().err
    assert caught.value.code == 2
    assert err.count("\n") == 1
    assert "required: key, LIMIT" in err


def test_the_console_script_is_installed() -> None:
    assert SCRIPT.exists(), "pip install -e . creates the bucketcore script"
    version = script("--version")
    assert version.returncode == 0
    assert version.stdout.startswith("bucketcore ")
    bad = script("inspect", "nosuch://", "k", "1/s")
    assert bad.returncode == 2
    assert bad.stdout == ""
    assert bad.stderr.startswith("bucketcore: error: unknown store URL scheme")


# -- the other backends, through the console script in its own process ------------

SLOW = "general=7/hour"  # no token comes back during a test


def _used_then_inspected(url: str) -> None:
    with Limiter(url) as limiter:
        for _ in range(3):
            assert limiter.acquire("user:alice", Limit(7, 3600, name="general")).allowed
    shown = script("inspect", url, "user:alice", SLOW, "--json")
    assert shown.returncode == 0, shown.stderr
    (bucket,) = json.loads(shown.stdout)["buckets"]
    assert bucket["tokens"] == 4
    assert bucket["next_token_in"] == 0.0
    assert 3 * 3600 / 7 - 60 < bucket["full_in"] <= 3 * 3600 / 7
    reset = script("reset", url, "user:alice", SLOW)
    assert reset.returncode == 0, reset.stderr
    again = script("inspect", url, "user:alice", SLOW, "--json")
    assert json.loads(again.stdout)["buckets"][0]["tokens"] == 7


def test_inspect_and_reset_on_rocksdb(tmp_path: Path) -> None:
    pytest.importorskip("bucketcore.backends.rocksdb", reason="the rocksdb backend is not here")
    _used_then_inspected(f"rocksdb://{tmp_path / 'store'}")


def test_inspect_while_another_process_owns_the_rocksdb_store(tmp_path: Path) -> None:
    pytest.importorskip("bucketcore.backends.rocksdb", reason="the rocksdb backend is not here")
    url = f"rocksdb://{tmp_path / 'store'}"
    with Limiter(url) as owner:
        owner.store.open()  # type: ignore[attr-defined]  # a store opens on first use
        shown = script("inspect", url, "user:alice", SLOW)
    assert shown.returncode == 1
    assert shown.stderr.count("\n") == 1
    assert shown.stderr.startswith("bucketcore: error: StoreLocked: ")
    assert "pid" in shown.stderr


@pytest.fixture
def redis_url(redis_process_factory: type[RedisProcess]) -> str:
    pytest.importorskip("bucketcore.backends.redis", reason="the redis backend is not here")
    server = redis_process_factory()
    server.start()
    return str(server.url)


@pytest.mark.redis
def test_inspect_and_reset_on_redis(redis_url: str) -> None:
    _used_then_inspected(redis_url)


@pytest.mark.redis
def test_an_unreachable_redis_is_one_line_and_exit_1() -> None:
    pytest.importorskip("bucketcore.backends.redis", reason="the redis backend is not here")
    shown = script("inspect", f"redis://127.0.0.1:{free_port()}/0", "k", "1/s")
    assert shown.returncode == 1
    assert shown.stderr.count("\n") == 1
    assert shown.stderr.startswith("bucketcore: error: ")
