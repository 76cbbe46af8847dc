"""Real HTTP app servers (uvicorn, gunicorn) on free loopback ports, for end-to-end tests.

Redis servers are ``support/servers.py``'s, shared with the benchmarks.
"""

from __future__ import annotations

import base64
import contextlib
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT = 60.0  # generous: a loaded CI machine can be slow to import


@dataclass
class Answer:
    status: int
    headers: dict[str, str]  # names in lower case, as HTTP/2 and uvicorn send them
    body: bytes


def _lower(headers: object) -> dict[str, str]:
    return {name.lower(): value for name, value in headers.items()}  # type: ignore[attr-defined]


def get(url: str, user: str | None = None, timeout: float = 30.0) -> Answer:
    request = urllib.request.Request(url)  # noqa: S310 - loopback http only
    if user is not None:
        token = base64.b64encode(f"{user}:pw".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return Answer(response.status, _lower(response.headers), response.read())
    except urllib.error.HTTPError as error:
        return Answer(error.code, _lower(error.headers), error.read())


@contextlib.contextmanager
def serving(command: Sequence[str], port: int, ready_path: str, log: Path) -> Iterator[str]:
    """Run ``command`` until ``GET ready_path`` answers, yield the base URL, then stop it."""
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with log.open("wb") as output:
        process = subprocess.Popen(
            list(command), cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"server exited with {process.returncode}:\n{log.read_text()}")
            try:
                get(base + ready_path, timeout=2.0)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"server did not answer:\n{log.read_text()}") from None
                time.sleep(0.1)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)


def uvicorn(app: str, port: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "uvicorn",
        app,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--no-access-log",
    ]


def gunicorn(app: str, port: int, workers: int, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "gunicorn",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(workers),
        *extra,
        app,
    ]
