"""The ``bucketcore`` command: look at and reset buckets on any backend.

    bucketcore inspect URL KEY LIMIT... [--json]   tokens, retry and reset times
    bucketcore reset URL KEY LIMIT...              make the buckets full again
    bucketcore demo [URL] [--limit L] [-n N]       watch a bucket drain, live

``LIMIT`` is a spec (``7/30s``, ``100/hour``, ``10/s burst 20``), or
``NAME=SPEC`` for a named pool (``general=7/30s``): a bucket is found by its
limit's name, else by its spec, so give the same one the application uses.
Every error is one line on stderr and a non-zero exit: 2 for bad input, 1
for a store that failed.

>>> main(["inspect", "memory://", "user:alice", "general=7/30s"])
general=7/30s  key 'user:alice'  on memory://
  tokens       7 of 7
  next token   now
  full in      0 s
0
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Sequence
from typing import Any, NoReturn, TextIO

from bucketcore import __version__
from bucketcore._urls import redacted
from bucketcore.decision import Decision
from bucketcore.errors import BucketError, ConfigurationError
from bucketcore.limit import Limit
from bucketcore.limiter import Limiter

__all__ = ["bucket_state", "main", "parse_limit"]

EXIT_STORE = 1
EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line like every other error."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def parse_limit(text: str) -> Limit:
    """``"7/30s"`` or ``"general=7/30s"`` as a ``Limit``.

    >>> parse_limit("general=7/30s")
    Limit(tokens=7, period=30.0, burst=7, name='general')
    """
    name, equals, spec = text.partition("=")
    if not equals:
        return Limit.parse(text)
    if not name.strip():
        raise ConfigurationError(f"empty pool name in {text!r}: use NAME=SPEC, e.g. general=7/30s")
    return Limit.parse(spec, name=name.strip())


def _shown(seconds: float) -> str:
    """Seconds for people: 4.29, 30, 1800 (never 1.8e+03).

    >>> _shown(30 / 7), _shown(1800.0)
    ('4.29', '1800')
    """
    return f"{seconds:.3g}" if seconds < 1000 else f"{seconds:.0f}"


def _seconds(value: float) -> float | None:
    return None if value == math.inf else round(value, 6)


def bucket_state(limit: Limit, peeked: Decision) -> dict[str, Any]:
    """What ``inspect`` reports about a bucket, from a ``peek`` of one token.

    An allowed peek counts the token it would take, so the bucket as it
    stands holds one more, and is full one token's refill time sooner.

    >>> from bucketcore import Limiter
    >>> state = bucket_state(Limit(2, 1), Limiter(clock=lambda: 0).peek("k", Limit(2, 1)))
    >>> state["tokens"], state["burst"], state["next_token_in"], state["full_in"]
    (2, 2, 0.0, 0.0)
    """
    if peeked.allowed:
        tokens = peeked.remaining + 1
        full_in = max(0.0, peeked.reset_after - limit.period / limit.tokens)
    else:
        tokens = peeked.remaining
        full_in = peeked.reset_after
    return {
        "limit": str(limit),
        "name": limit.name,
        "tokens": tokens,
        "burst": limit.burst,
        "rate_per_second": limit.rate,
        "next_token_in": _seconds(peeked.retry_after),
        "full_in": _seconds(full_in),
    }


def _inspect(args: argparse.Namespace, out: TextIO) -> int:
    limits = [parse_limit(text) for text in args.limits]
    with Limiter(args.url) as limiter:
        states = [bucket_state(limit, limiter.peek(args.key, limit)) for limit in limits]
    if args.json:
        json.dump({"url": redacted(args.url), "key": args.key, "buckets": states}, out, indent=2)
        out.write("\n")
        return 0
    for state in states:
        out.write(f"{state['limit']}  key {args.key!r}  on {redacted(args.url)}\n")
        out.write(f"  tokens       {state['tokens']} of {state['burst']}\n")
        wait = state["next_token_in"]
        if wait is None:
            out.write("  next token   never\n")
        else:
            out.write(f"  next token   {'now' if wait == 0 else f'in {wait:g} s'}\n")
        out.write(f"  full in      {state['full_in']:g} s\n")
    return 0


def _reset(args: argparse.Namespace, out: TextIO) -> int:
    limits = [parse_limit(text) for text in args.limits]
    with Limiter(args.url) as limiter:
        for limit in limits:
            limiter.reset(args.key, limit)
            out.write(f"reset {limit} for key {args.key!r} on {redacted(args.url)}\n")
    return 0


def _demo(args: argparse.Namespace, out: TextIO) -> int:
    limit = parse_limit(args.limit)
    if args.requests < 1:
        raise ConfigurationError(f"--requests must be >= 1, got {args.requests}")
    # A fresh key each run, reset afterwards: the demo never touches real clients.
    key = f"bucketcore-demo:{time.time_ns()}"
    out.write(f"{args.requests} requests against {limit} on {redacted(args.url)}\n")
    with Limiter(args.url) as limiter:
        try:
            for number in range(1, args.requests + 1):
                decision = limiter.acquire(key, limit)
                if decision.allowed:
                    verdict = f"allowed  {decision.remaining} left"
                else:
                    verdict = f"denied   retry in {_shown(decision.retry_after)} s"
                out.write(f"  #{number:<3} {verdict}\n")
            headers = decision.headers()
            out.write("last response's headers:\n")
            for name, value in headers.items():
                out.write(f"  {name}: {value}\n")
        finally:
            limiter.reset(key, limit)
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="bucketcore", description="Inspect and reset bucketcore buckets.")
    parser.add_argument("--version", action="version", version=f"bucketcore {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    inspect = commands.add_parser("inspect", help="show buckets: tokens, retry and reset times")
    inspect.add_argument("url", help="store URL, e.g. redis://localhost:6379/0")
    inspect.add_argument("key", help="the limiter key, e.g. user:alice")
    inspect.add_argument("limits", nargs="+", metavar="LIMIT", help="SPEC or NAME=SPEC")
    inspect.add_argument("--json", action="store_true", help="print JSON")
    inspect.set_defaults(run=_inspect)

    reset = commands.add_parser("reset", help="make buckets full again")
    reset.add_argument("url")
    reset.add_argument("key")
    reset.add_argument("limits", nargs="+", metavar="LIMIT", help="SPEC or NAME=SPEC")
    reset.set_defaults(run=_reset)

    demo = commands.add_parser("demo", help="watch a bucket drain on a store")
    demo.add_argument("url", nargs="?", default="memory://")
    demo.add_argument("--limit", default="demo=7/30s", help="SPEC or NAME=SPEC (demo=7/30s)")
    demo.add_argument("-n", "--requests", type=int, default=9)
    demo.set_defaults(run=_demo)
    return parser


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """Run the command line; returns the exit status.

    >>> main(["reset", "memory://", "k", "1/s"])
    reset 1/1s for key 'k' on memory://
    0
    """
    args = _parser().parse_args(argv)
    stream = out if out is not None else sys.stdout
    try:
        status: int = args.run(args, stream)
    except ConfigurationError as exc:
        sys.stderr.write(f"bucketcore: error: {exc}\n")
        return EXIT_USAGE
    except (BucketError, OSError) as exc:
        sys.stderr.write(f"bucketcore: error: {type(exc).__name__}: {exc}\n")
        return EXIT_STORE
    return status


def entry_point() -> NoReturn:
    """The ``bucketcore`` console script."""
    sys.exit(main())
