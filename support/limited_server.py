"""Someone else's API, for the outbound tests and benchmarks: an HTTP server that enforces a limit.

``python -m support.limited_server "20/s burst 1"`` serves on a free
loopback port (printed as its first line) and decides every request with
its own bucketcore ``Limiter`` at the moment it arrives: 200, or 429 with
``Retry-After`` when over. It runs in its own process, so the client's
interpreter (its GIL) never delays the server's clock reading. Apart from
the limited paths it answers:

- ``GET /stats``: the arrival times (``time.monotonic_ns()``, comparable
  with the client's on one machine) of the allowed and the refused requests;
- ``POST /refuse?seconds=2&form=date``: refuse every request for that long
  with 429 and ``Retry-After`` (delay-seconds, or an HTTP date with
  ``form=date``), as an overloaded API does;
- ``POST /reset``: forget the stats and fill the bucket again.

``serving(spec)`` starts one and yields its base URL.

    >>> from support.limited_server import Arrivals
    >>> Arrivals([0, 50_000_000], []).span_seconds
    0.05
"""

from __future__ import annotations

import argparse
import contextlib
import email.utils
import json
import math
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from bucketcore import Limit, Limiter

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Arrivals:
    """When the server saw each request it allowed and each one it refused."""

    allowed: list[int]
    refused: list[int]

    @property
    def span_seconds(self) -> float:
        """Seconds from the first allowed arrival to the last."""
        return (self.allowed[-1] - self.allowed[0]) / 1e9 if self.allowed else 0.0

    def allowed_share(self, limit: Limit) -> float:
        """Allowed requests over what ``limit`` allows in their span (1.0: every one)."""
        burst = limit.capacity_units // limit.token_units
        can = burst + self.span_seconds * limit.tokens / limit.period
        return len(self.allowed) / can


class _State:
    def __init__(self, spec: str) -> None:
        self.limit = Limit.parse(spec)
        self.lock = threading.Lock()
        self.limiter = Limiter()
        self.allowed: list[int] = []
        self.refused: list[int] = []
        self.refuse_until = 0
        self.refuse_form = "seconds"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as a real API client expects
    disable_nagle_algorithm = True  # headers and body leave at once, no 40 ms delayed ACK
    state: _State

    def do_GET(self) -> None:
        arrived = time.monotonic_ns()
        if self.path == "/stats":
            with self.state.lock:
                stats = {"allowed": self.state.allowed, "refused": self.state.refused}
                self._send(200, json.dumps(stats).encode(), {})
            return
        self._limited(arrived)

    def do_POST(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(url.query))
        state = self.state
        with state.lock:
            if url.path == "/refuse":
                state.refuse_until = time.monotonic_ns() + int(float(query["seconds"]) * 1e9)
                state.refuse_form = query.get("form", "seconds")
            elif url.path == "/reset":
                state.allowed.clear()
                state.refused.clear()
                state.refuse_until = 0
                state.limiter.reset("client", state.limit)
        self._send(204, b"", {})

    def _limited(self, arrived: int) -> None:
        state = self.state
        with state.lock:
            refusing = (state.refuse_until - arrived) / 1e9
            if refusing > 0:
                state.refused.append(arrived)
                if state.refuse_form == "date":
                    # whole seconds, rounded up: the date must not end the refusal early
                    retry = email.utils.formatdate(math.ceil(time.time() + refusing), usegmt=True)
                else:
                    retry = str(math.ceil(refusing))
                self._send(429, b"busy\n", {"Retry-After": retry})
                return
            decision = state.limiter.acquire("client", state.limit)
            (state.allowed if decision.allowed else state.refused).append(arrived)
        status = 200 if decision.allowed else 429
        self._send(status, b"ok\n" if decision else b"over\n", decision.headers())

    def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        return None


def serve(spec: str) -> None:
    """Serve ``spec`` on a free loopback port until killed; print the port first."""
    handler = type("Handler", (_Handler,), {"state": _State(spec)})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    print(server.server_address[1], flush=True)
    server.serve_forever()


def arrivals(base: str) -> Arrivals:
    """What the server at ``base`` has seen so far."""
    with urllib.request.urlopen(base + "/stats", timeout=30) as answer:  # noqa: S310 - loopback
        stats = json.loads(answer.read())
    return Arrivals(stats["allowed"], stats["refused"])


def post(base: str, path: str) -> None:
    """``POST`` a control path (``/refuse?seconds=2``, ``/reset``)."""
    request = urllib.request.Request(base + path, method="POST")  # noqa: S310 - loopback
    with urllib.request.urlopen(request, timeout=30):  # noqa: S310
        pass


@contextlib.contextmanager
def serving(spec: str) -> Iterator[str]:
    """Run a limited server in a child process; yield ``http://127.0.0.1:<port>``."""
    command = [sys.executable, "-m", "support.limited_server", spec]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        port = process.stdout.readline().strip()
        if not port.isdigit():
            raise RuntimeError(f"the limited server did not start (exit {process.wait()})")
        yield f"http://127.0.0.1:{port}"
    finally:
        process.kill()
        process.wait(timeout=30)
        if process.stdout is not None:
            process.stdout.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("limit", help='the limit to enforce, e.g. "20/s burst 1"')
    serve(parser.parse_args().limit)


if __name__ == "__main__":
    main()
