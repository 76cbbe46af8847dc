"""Turn a results file into ``docs/benchmarks.md`` and the PNG charts it embeds.

    python -m benchmarks.report benchmarks/results/2026-12-01.json docs/benchmarks.md

The report only reads the JSON (``benchmarks.compare`` writes it), so it can
be regenerated, and tested, without measuring anything.
"""

from __future__ import annotations

import argparse
import json
import math
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks import bars as bar_specs
from benchmarks import charts
from benchmarks.harness import BUCKETCORE, PEER

SUITE_TITLES = {
    "memory": "memory:// against its floor and the peers",
    "scaling": "Scaling: cost per decision as resident buckets grow",
    "rocksdb": "RocksDB: durability modes against memory:// and raw rocksdict",
    "redis": "Redis: bucketcore against PING, a raw EVALSHA and the peers",
    "cluster": "Redis Cluster (3 masters)",
    "backends": "Every backend on the same workloads (acquire)",
    "lmdb": "lmdb://: one decision against memory://, Redis and pyrate-limiter's SQLite bucket",
    "processes": "Several processes on one host: aggregate decisions per second",
    "outbound": "Outbound: pacing calls to a server that enforces the same limit",
}
SUITE_ORDER = list(SUITE_TITLES)

SUITE_INTROS = {
    "memory": [
        "Each case asks for one token of a key through one lambda, the way a user of",
        "that library would. How the peers are set up, so that every call is allowed",
        "(denied groups: one token a day):",
        "",
        "- token-bucket (falconry) 0.4: `Limiter(rate, capacity, MemoryStorage()).consume(key)`;",
        "  no lock, a bare bool.",
        "- throttled-py 3.5: `Throttled(using='token_bucket', quota=per_duration(...))`,",
        "  `limit(key)`; its `MemoryStore` keeps 1024 keys by default and evicts the least",
        "  recently used (a reset bucket), so here it may keep every key.",
        "- pyrate-limiter 4.5: a `StateBucket` with its `TokenBucket` algorithm per key (a",
        "  `BucketFactory`: `Limiter(rate)` alone is one bucket for every name),",
        "  `try_acquire(key, blocking=False)`.",
        "- limits 5.8: `hit(item, key)` on its fixed, moving and sliding windows, with the",
        "  window closest to the bucket (as long as it takes to refill, in whole seconds).",
        "  The moving window keeps one entry per hit inside its window, inserted at the",
        "  front of a list: with every call allowed, its cost per call grows with the run.",
        "",
    ],
    "lmdb": [
        "One process deciding. memory:// is per process (not shared); every other store",
        "shares its limits with every process of the host (Redis: of every host). The floor",
        "is a raw py-lmdb write transaction (get, put of a record's size, commit).",
        "pyrate-limiter 4.5's `SQLiteBucket.init_from_file([rate], db_path=...,",
        "use_file_lock=True)` with `Limiter(bucket)`, as its README shares a limit between",
        "processes: a sliding-window log (one row per call, counted on each call) in one",
        "SQLite file (WAL), each call under a `filelock` file lock; one bucket for every key.",
        "The rate is 10^9 a second (every call allowed; the log holds one second of calls).",
        "Its `try_acquire` runs blocking: non-blocking calls pass `acquire(False)` to",
        "filelock 4, which takes it as a timeout and raises.",
        "",
    ],
    "processes": [
        "Each process is forked from the runner, decides on its own 100 keys for a fixed",
        "time after a common barrier; a group's time is the wall time from the first",
        "start to the last end over every process's decisions (the chart shows its",
        "inverse: aggregate decisions per second). memory:// gives each process its own",
        "buckets (4 processes, 4x the limit): it is the ceiling, not a shared limit.",
        "The machine's CPU count (above) caps what more processes can add.",
        "",
    ],
    "rocksdb": [
        "Stores live on the real disk (not a tmpfs), under `.bench-data/`. The naive loop",
        "is one thread calling rocksdict `put` with `sync=True` per decision; fsync-bound",
        "cases run in interleaved time-boxed slices.",
        "",
    ],
}


_ns = charts.ns_text


def _ratio(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "n/a"
    return f"{value:.2f}x" if value < 100 else f"{value:,.0f}x"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return [*lines, ""]


def _rows_by_case(group: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {row["case"]: row for row in group["rows"]}


# -- the markdown ---------------------------------------------------------------


def _meta_lines(meta: dict[str, Any]) -> list[str]:
    versions = ", ".join(f"{name} {version}" for name, version in meta.get("versions", {}).items())
    return [
        f"Produced by `{meta.get('command', 'python -m benchmarks.compare')}` "
        f"({meta.get('mode', '?')} mode) on {meta.get('date', '?')}, in "
        f"{meta.get('seconds', 0):.0f} s.",
        "",
        f"- Machine: {meta.get('machine', '?')}; {meta.get('cpus', '?')} CPUs, shared with "
        "other work while this ran (absolute times are noisy; ratios are what count).",
        f"- Python {meta.get('python', '?')}; Redis server {meta.get('redis_server', 'n/a')}.",
        f"- Versions: {versions}.",
        "",
    ]


_HOW_TO_READ = [
    "How to read this: every table is one *group*, a single workload measured through",
    "every case in the same process, in interleaved rounds (A B C A B C ...); each case",
    "keeps its best round. A noisy neighbour slows a whole round alike, so the ratios",
    "within a group are meaningful even though the absolute times are not. `x ref` is",
    "the ratio to the group's reference (its floor); no figure is compared across",
    "groups or runs.",
    "",
]


def _bars_section(rows: list[dict[str, Any]]) -> list[str]:
    lines = ["## The bars (docs/design.md §6), from this run", ""]
    passed = sum(row["result"] == bar_specs.PASS for row in rows)
    lines.append(f"{passed} of {len(rows)} bars pass.")
    lines.append("")
    table = []
    for row in rows:
        # Three decimals: a bar at 1.0 can miss by 0.3%, and "1.00x FAIL" would puzzle.
        absolute = row.get("unit") == "ms"  # the stalled-Redis bar: a p99, not a ratio
        unit = " ms" if absolute else "x"
        value = "n/a" if row["ratio"] is None else f"{row['ratio']:.3f}{unit}"
        measured = (
            f"{row['numerator']} = {value}"
            if absolute
            else f"{row['numerator']} / {row['denominator']} = {value}"
        )
        result = row["result"] if row["result"] == bar_specs.PASS else f"**{row['result']}**"
        required = f"{row['op']} {row['threshold']:g}{unit if absolute else ''}"
        table.append([f"#{row['issue']}", row["bar"], measured, required, result])
    lines += _table(["issue", "bar", "measured (ns ratio, or ms)", "required", "result"], table)
    return lines


def _case_ns(groups: list[dict[str, Any]], group_id: str, case: str) -> float | None:
    for group in groups:
        if group["id"] == group_id:
            for row in group["rows"]:
                if row["case"] == case or row.get("bar_case") == case:
                    return float(row["ns"])
    return None


def headline(results: dict[str, Any]) -> list[str]:
    """The few ratios a README can quote, as sentences (only those measured)."""
    from benchmarks import contenders as c

    groups = results.get("groups", [])
    lines = []

    def ratio(group_id: str, top: str, bottom: str) -> float | None:
        a, b = _case_ns(groups, group_id, top), _case_ns(groups, group_id, bottom)
        return None if a is None or b is None or b <= 0 else a / b

    for group_id, where in (("memory.hot", "one hot key"), ("memory.many", "100k keys")):
        vs_falconry = ratio(group_id, c.TRY_ACQUIRE, c.FALCONRY)
        vs_floor = ratio(group_id, c.TRY_ACQUIRE, c.FLOOR_NAME)
        peers = [ratio(group_id, peer, c.TRY_ACQUIRE) for peer in c.PEERS_8X]
        measured = [value for value in peers if value is not None]
        if vs_falconry is None or vs_floor is None or not measured:
            continue
        lines.append(
            f"- memory `try_acquire`, {where}: {_ratio(vs_floor)} the dict+lock+clock floor, "
            f"{_ratio(vs_falconry)} falconry's `consume`, and {_ratio(min(measured))} to "
            f"{_ratio(max(measured))} faster than throttled-py, pyrate-limiter and limits."
        )
    wal = ratio("rocksdb.many", bar_specs.ROCKSDB_WAL, bar_specs.MEMORY_STORE)
    if wal is not None:
        lines.append(f"- rocksdb `wal`: {_ratio(wal)} memory:// per decision (100k keys).")
    sync = ratio("rocksdb.sync_threads", bar_specs.NAIVE_FSYNC, bar_specs.ROCKSDB_SYNC_8)
    if sync is not None:
        lines.append(
            f"- rocksdb `sync` with 8 threads: {_ratio(sync)} the throughput of one fsync per put."
        )
    single = ratio("redis.hot", bar_specs.REDIS_SINGLE, bar_specs.REDIS_EVALSHA)
    via_redis_py = ratio("redis.hot", bar_specs.REDIS_SINGLE, bar_specs.REDIS_PY_EVALSHA)
    batch = ratio("redis.hot", bar_specs.REDIS_SINGLE, bar_specs.REDIS_BATCH)
    tasks = ratio("redis.hot", bar_specs.REDIS_SINGLE, bar_specs.REDIS_ASYNC)
    if None not in (single, via_redis_py, batch, tasks):
        lines.append(
            f"- Redis: one decision costs {_ratio(via_redis_py)} a redis-py `evalsha()` of a "
            f"trivial script ({_ratio(single)} the same EVALSHA sent raw); "
            f"`acquire_many` gives {_ratio(batch)} and AsyncLimiter {_ratio(tasks)} the "
            "single-call throughput."
        )
    lines += _lmdb_headline(ratio)
    accuracy = results.get("accuracy", [])
    ours = [row for row in accuracy if row["library"] == "bucketcore"]
    if ours:
        exact = sum(row["granted"] == row["exact"] for row in ours)
        peers = [row for row in accuracy if row["library"] != "bucketcore"]
        over = sorted({row["library"] for row in peers if row["excess"] > 0})
        under = sorted({row["library"] for row in peers if row["excess"] < -1})
        lines.append(
            f"- Accuracy: bucketcore grants exactly what the ideal token bucket grants on "
            f"{exact} of {len(ours)} patterns. Granting more than it on some pattern: "
            f"{', '.join(over) or 'none'}; more than one token fewer: {', '.join(under) or 'none'}."
        )
    return lines


def _lmdb_headline(ratio: Callable[[str, str, str], float | None]) -> list[str]:
    """The lmdb:// sentence: one decision and four processes, when measured."""
    memory = ratio("lmdb.hot", bar_specs.LMDB_WAL, bar_specs.MEMORY_STORE)
    redis = ratio("lmdb.hot", bar_specs.REDIS_SINGLE, bar_specs.LMDB_WAL)
    sqlite = ratio("lmdb.hot", bar_specs.PYRATE_SQLITE, bar_specs.LMDB_WAL)
    four = ratio("processes.4", bar_specs.REDIS_SINGLE, bar_specs.LMDB_WAL)
    if memory is None:
        return []
    line = f"- lmdb:// `acquire`, one hot key: {_ratio(memory)} memory://"
    if redis is not None:
        line += f", {_ratio(redis)} faster than one Redis decision"
    if sqlite is not None:
        line += f", {_ratio(sqlite)} faster than pyrate-limiter's SQLite bucket"
    if four is not None:
        line += f"; 4 processes: {_ratio(four)} the aggregate decisions/s of 4 on Redis"
    return [line + "."]


def _findings(groups: list[dict[str, Any]]) -> list[str]:
    """Where a missed Redis bar's time goes, when the diagnostic case was measured."""
    trivial = _case_ns(groups, "redis.hot", bar_specs.REDIS_EVALSHA)
    script = _case_ns(groups, "redis.hot", bar_specs.REDIS_RAW_SCRIPT)
    ours = _case_ns(groups, "redis.hot", bar_specs.REDIS_SINGLE)
    if trivial is None or script is None or ours is None:
        return []
    return [
        "Where a Redis decision's time goes (one hot key): the raw EVALSHA of bucketcore's own",
        f"script costs {_ratio(script / trivial)} the trivial one (the server's share: the script,",
        f"TIME, the key's read and write), and the full `acquire` {_ratio(ours / script)} that raw",
        "call (the client's share: building the command, parsing the reply, the Decision).",
        "",
    ]


def _group_lines(group: dict[str, Any]) -> list[str]:
    rows = group["rows"]
    reference = _rows_by_case(group).get(group["reference"])
    ref_ns = reference["ns"] if reference else None
    lines = [f"#### {group['title']}", ""]
    if group.get("note"):
        lines += [f"_{group['note']}_", ""]
    table = []
    for row in sorted(rows, key=lambda r: r["ns"]):
        ratio = row["ns"] / ref_ns if ref_ns else None
        per_second = 1e9 / row["ns"] if row["ns"] > 0 else math.inf
        table.append(
            [row["case"], row["role"], _ns(row["ns"]), _ratio(ratio), f"{per_second:,.0f}"]
        )
    lines += _table([f"case ({group['id']})", "role", group["unit"], "x ref", "per s"], table)
    return lines


def _peer_matrix(groups: list[dict[str, Any]]) -> list[str]:
    """bucketcore's rows divided into each peer's, per workload: how many times faster."""
    lines = ["### bucketcore against each peer (peer time / bucketcore time)", ""]
    peers: list[str] = []
    ours: list[str] = []
    for group in groups:
        for row in group["rows"]:
            if row["role"] == PEER and row["case"] not in peers:
                peers.append(row["case"])
            if row["role"] == BUCKETCORE and row["case"] not in ours:
                ours.append(row["case"])
    if not peers or not ours:
        return []
    table = []
    for group in groups:
        by_case = _rows_by_case(group)
        for case in ours:
            if case not in by_case:
                continue
            mine = by_case[case]["ns"]
            cells = [
                _ratio(by_case[peer]["ns"] / mine) if peer in by_case else "" for peer in peers
            ]
            table.append([group["title"], case, *cells])
    return lines + _table(["workload", "bucketcore", *peers], table)


def _accuracy_section(rows: list[dict[str, Any]]) -> list[str]:
    if not rows:
        return []
    lines = [
        "## Accuracy: the same traffic through every library",
        "",
        "Each pattern is replayed on a virtual clock (bucketcore and pyrate-limiter take a",
        "clock; the others read `time.time`/`time.monotonic`, patched for the replay).",
        "`exact` is an unrounded token bucket (`fractions.Fraction`) on the same instants;",
        "`bound` is the contract's `burst + rate * t`. `excess` > 0 lets traffic through",
        "that the limit forbids; < 0 throttles a client that kept to its limit.",
        "Window limiters (`limits`) get the window closest to the bucket (shown).",
        "",
    ]
    table = []
    for row in rows:
        table.append(
            [
                row["title"],
                row["library"] + (f" ({row['window']})" if row.get("window") else ""),
                f"{row['calls']:,}",
                f"{row['granted']:,}",
                f"{row['exact']:,}",
                f"{row['bound']:,.1f}",
                f"{row['excess']:+,}",
            ]
        )
    lines += _table(["pattern", "library", "calls", "granted", "exact", "bound", "excess"], table)
    return lines


def _footprint_section(rows: list[dict[str, Any]]) -> list[str]:
    if not rows:
        return []
    lines = ["## Footprint: bytes per resident bucket", ""]
    table = [
        [
            row["case"],
            row["store"],
            f"{row['bytes_per_bucket']:,.0f}",
            f"{row['keys']:,}",
            row["method"],
        ]
        for row in rows
    ]
    return lines + _table(["case", "store", "bytes/bucket", "buckets", "measured by"], table)


def write(results: dict[str, Any], report: Path) -> list[Path]:
    """Write the markdown report and its charts; return the files written."""
    groups: list[dict[str, Any]] = results.get("groups", [])
    bar_rows = results.get("bars") or bar_specs.evaluate(groups)
    charts_dir = report.parent / report.stem
    charts_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []

    def chart(name: str) -> str:
        path = charts_dir / name
        written.append(path)
        return f"![{name}]({charts_dir.name}/{name})"

    lines = ["# bucketcore benchmarks", ""]
    lines += _meta_lines(results.get("meta", {}))
    lines += _HOW_TO_READ
    top = headline(results)
    if top:
        lines += ["## Headline", "", *top, ""]
    lines += _bars_section(bar_rows)
    lines += _findings(groups)
    if results.get("notes"):
        lines += ["Notes on this run:", ""] + [f"- {note}" for note in results["notes"]] + [""]

    by_suite: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for group in groups:
        by_suite[group["suite"]].append(group)
    for suite in sorted(by_suite, key=lambda s: SUITE_ORDER.index(s) if s in SUITE_ORDER else 99):
        suite_groups = by_suite[suite]
        lines += [f"## {SUITE_TITLES.get(suite, suite)}", "", *SUITE_INTROS.get(suite, [])]
        plain = [g for g in suite_groups if g.get("x") is None]
        lines_groups = [g for g in suite_groups if g.get("x") is not None]
        if plain:
            name = f"{suite}.png"
            charts.bar_chart(plain, charts_dir / name, SUITE_TITLES.get(suite, suite))
            lines += [chart(name), ""]
        series: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for group in lines_groups:
            series[group["id"].rsplit(".", 1)[0]].append(group)
        for series_id, members in series.items():
            name = f"{series_id}.png"
            xlabel = series_id.split(".")[-1]
            if xlabel == "resident":
                xlabel = "resident buckets"
            if series_id == "processes":
                xlabel = "processes deciding at once"
            charts.line_chart(
                members,
                charts_dir / name,
                f"{series_id}: {xlabel}",
                xlabel,
                per_second=series_id == "processes",
            )
            lines += [chart(name), ""]
        if suite == "memory":
            lines += _peer_matrix(plain)
        lines += ["### Every group", ""]
        for group in suite_groups:
            lines += _group_lines(group)

    accuracy = results.get("accuracy", [])
    if accuracy:
        charts.accuracy_chart(accuracy, charts_dir / "accuracy.png")
        lines += [*_accuracy_section(accuracy), chart("accuracy.png"), ""]
    footprint = results.get("footprint", [])
    if footprint:
        charts.footprint_chart(footprint, charts_dir / "footprint.png")
        lines += [*_footprint_section(footprint), chart("footprint.png"), ""]

    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text("\n".join(lines).rstrip() + "\n", encoding="utf-8")
    for stale in set(charts_dir.glob("*.png")) - set(written):  # from a run with more suites
        stale.unlink()
    return [report, *written]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path)
    parser.add_argument("report", type=Path, nargs="?", default=Path("docs/benchmarks.md"))
    args = parser.parse_args(argv)
    results = json.loads(args.results.read_text(encoding="utf-8"))
    for path in write(results, args.report):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
