"""The side-by-side runner: every suite in one run, then the JSON and the report.

    python -m benchmarks.compare            # make bench: everything, ~15 minutes
    python -m benchmarks.compare --quick    # make bench-quick: a subset, under 3 minutes
    python -m benchmarks.compare --only memory,accuracy

Suites (``--only`` picks some, in the order given):

- memory: workloads, threads, resident-key scaling, against the peers;
- accuracy: the same traffic replayed through every library;
- footprint: bytes per resident bucket in memory;
- rocksdb: the durability modes next to memory:// and raw rocksdict, the
  fsync group commit against a naive loop, the GIL during an fsync;
- redis: standalone and a 3-master cluster, next to PING, a raw EVALSHA and
  the peers (one decision, acquire_many, AsyncLimiter, denied with and
  without the deny cache), the Redis footprint, and the p99 of calls while
  the server is stalled behind a fault proxy (``suite_redis_faults``);
- backends: every backend on the same workloads;
- lmdb: one lmdb:// decision next to memory://, Redis and pyrate-limiter's
  SQLite bucket;
- processes: 1, 2, 4 and 8 processes at once on memory:// (per process),
  lmdb://, Redis and pyrate-limiter's SQLite bucket;
- outbound: the httpx transport's cost per request and the rate it reaches
  against a local server enforcing the same limit.

The Redis suites start our own redis-server (or valkey-server) and cluster on
free loopback ports (``support/servers.py``; never 6379). A suite whose backend
or server is missing is skipped with a note, and its bars (``bars.py``, the
one list of them) are reported as not measured; lmdb and processes then run
without their Redis case.

Writes ``benchmarks/results/<date>.json`` (``<date>-quick.json`` in quick
mode), then ``docs/benchmarks.md`` (``docs/benchmarks-quick.md``) and its
PNG charts, and prints the bars with PASS/FAIL.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import shlex
import sys
import time
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

from benchmarks import (
    bars,
    report,
    suite_accuracy,
    suite_backends,
    suite_footprint,
    suite_lmdb,
    suite_memory,
    suite_outbound,
    suite_processes,
    suite_redis,
    suite_redis_faults,
    suite_rocksdb,
)
from benchmarks.harness import QUICK, SIZES, Group, Sizes, progress
from support import servers

SUITES = (
    "memory",
    "accuracy",
    "footprint",
    "rocksdb",
    "redis",
    "backends",
    "lmdb",
    "processes",
    "outbound",
)
PACKAGES = (
    "bucketcore",
    "token-bucket",
    "throttled-py",
    "pyrate-limiter",
    "limits",
    "redis",
    "hiredis",
    "rocksdict",
    "lmdb",
    "filelock",
    "httpx",
    "httpx2",
)


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _versions() -> dict[str, str]:
    found = {}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def measure(
    sizes: Sizes, only: tuple[str, ...] = SUITES, data_root: Path | None = None
) -> dict[str, Any]:
    """Run the chosen suites at ``sizes``; the results as the JSON document.

    Stores and servers keep their files under ``data_root`` (default
    ``./.bench-data``, on the real disk, for honest fsyncs).
    """
    unknown = sorted(set(only) - set(SUITES))
    if unknown:
        raise ValueError(f"unknown suite {unknown[0]!r}; choose from {', '.join(SUITES)}")
    started = time.monotonic()
    groups: list[Group] = []
    accuracy: list[dict[str, Any]] = []
    footprint: list[dict[str, Any]] = []
    notes: list[str] = []
    redis_version = "n/a"
    stack = contextlib.ExitStack()  # the servers, started once for the suites that need them
    running: servers.Servers | None = None

    def redis_servers() -> servers.Servers:
        nonlocal running, redis_version
        if running is None:
            running = stack.enter_context(_servers(data_root))
            redis_version = running.version
        return running

    with stack:
        for suite in only:
            progress(f"suite {suite}")
            if suite == "memory":
                groups += suite_memory.run(sizes)
            elif suite == "accuracy":
                accuracy += suite_accuracy.run(sizes)
            elif suite == "footprint":
                footprint += suite_footprint.run(sizes)
            elif suite == "rocksdb":
                why = suite_rocksdb.available()
                if why:
                    notes.append(f"rocksdb suite skipped: {why}")
                    progress(f"  skipped: {why}")
                    continue
                rocks_groups, rocks_footprint = suite_rocksdb.run(sizes, data_root)
                groups += rocks_groups
                footprint += rocks_footprint
            elif suite == "outbound":
                why = suite_outbound.available()
                if why:
                    notes.append(f"outbound suite skipped: {why}")
                    progress(f"  skipped: {why}")
                    continue
                groups += suite_outbound.run(sizes)
            elif suite in ("redis", "backends"):
                why = suite_redis.available() or servers.missing()
                if suite == "backends":
                    why = why or suite_rocksdb.available()
                if why:
                    notes.append(f"{suite} suite skipped: {why}")
                    progress(f"  skipped: {why}")
                    continue
                if suite == "redis":
                    groups += suite_redis.run(redis_servers(), sizes)
                    groups += suite_redis_faults.run(redis_servers(), sizes)
                    footprint += suite_footprint.redis_rows(
                        f"redis://127.0.0.1:{redis_servers().standalone.port}", sizes
                    )
                else:
                    groups += suite_backends.run(redis_servers(), sizes, data_root)
            elif suite in ("lmdb", "processes"):
                why = suite_lmdb.available()
                if why:
                    notes.append(f"{suite} suite skipped: {why}")
                    progress(f"  skipped: {why}")
                    continue
                without = suite_redis.available() or servers.missing()
                if without:
                    notes.append(f"{suite} suite ran without its Redis case: {without}")
                shared = None if without else redis_servers()
                module = suite_lmdb if suite == "lmdb" else suite_processes
                groups += module.run(shared, sizes, data_root)
    group_docs = [group.as_json() for group in groups]
    seconds = time.monotonic() - started
    progress("done")
    return {
        "meta": {
            "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "mode": sizes.name,
            "command": "python -m benchmarks.compare " + shlex.join(sys.argv[1:]),
            "seconds": seconds,
            "machine": f"{_cpu()}, {platform.system()} {platform.release()}",
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "redis_server": redis_version,
            "versions": _versions(),
            "sizes": sizes.__dict__,
            "suites": list(only),
        },
        "groups": group_docs,
        "bars": bars.evaluate(group_docs),
        "accuracy": accuracy,
        "footprint": footprint,
        "notes": notes,
    }


@contextlib.contextmanager
def _servers(data_root: Path | None) -> Iterator[servers.Servers]:
    """Our own standalone server and 3-master cluster, for every suite that needs them."""
    progress("  starting a redis-server and a 3-master cluster on free loopback ports")
    with servers.started(data_root or Path.cwd() / ".bench-data") as running:
        nodes = running.cluster.nodes if running.cluster is not None else []
        ports = ", ".join(str(server.port) for server in [running.standalone, *nodes])
        progress(f"  started: 127.0.0.1 ports {ports} ({running.version})")
        yield running


def summary(results: dict[str, Any]) -> list[str]:
    """The bars, as printed at the end of a run."""
    lines = ["", "bars (docs/design.md §6), from this run:"]
    for row in results["bars"]:
        ratio = "n/a" if row["ratio"] is None else f"{row['ratio']:.3f}"
        unit = " ms" if row.get("unit") == "ms" else ""
        lines.append(
            f"  {row['result']:12} #{row['issue']} {row['bar']:90} {ratio:>7}{unit} "
            f"({row['op']} {row['threshold']:g}{unit})"
        )
    passed = sum(row["result"] == bars.PASS for row in results["bars"])
    lines.append(f"  {passed} of {len(results['bars'])} bars pass")
    for note in results.get("notes", []):
        lines.append(f"  note: {note}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="a subset: under 3 minutes")
    mode.add_argument("--sizes", choices=sorted(SIZES), help="full, quick or smoke")
    parser.add_argument("--only", help=f"comma-separated suites of: {', '.join(SUITES)}")
    parser.add_argument("--json", type=Path, help="results file (default: benchmarks/results/)")
    parser.add_argument("--report", type=Path, help="markdown report (default: docs/)")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else SIZES[args.sizes or "full"]
    only = tuple(args.only.split(",")) if args.only else SUITES
    unknown = sorted(set(only) - set(SUITES))
    if unknown:
        parser.error(f"unknown suite {unknown[0]!r}; choose from {', '.join(SUITES)}")
    suffix = "" if sizes.name == "full" else f"-{sizes.name}"
    day = datetime.date.today().isoformat()
    json_path = args.json or Path("benchmarks/results") / f"{day}{suffix}.json"
    report_path = args.report or Path("docs") / f"benchmarks{suffix}.md"

    print(f"bucketcore benchmarks, {sizes.name} mode: {', '.join(only)}", flush=True)
    results = measure(sizes, only)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    written = report.write(results, report_path)
    print("\n".join(summary(results)))
    print(f"\nresults: {json_path}\nreport:  {written[0]} ({len(written) - 1} charts)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
