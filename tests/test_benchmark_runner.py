"""The benchmark runner (``python -m benchmarks.compare``), every suite once at smoke size.

This keeps the runner from rotting: every suite, every case and the report
run in the default test run, at sizes that take seconds. Only facts that do
not depend on timing are asserted (every bar is measured, bucketcore's
replays equal the exact token bucket).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from benchmarks import (
    bars,
    compare,
    report,
    suite_accuracy,
    suite_lmdb,
    suite_processes,
    suite_redis,
    suite_redis_faults,
    suite_rocksdb,
)
from benchmarks.harness import SMOKE
from bucketcore.memory import fast_path_available
from support import servers
from support.servers import IN_CI

LOCAL_SUITES = ("memory", "accuracy", "footprint", "rocksdb")


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return compare.measure(SMOKE, LOCAL_SUITES, tmp_path_factory.mktemp("bench-data"))


def test_every_case_of_every_local_group_was_measured(results: dict[str, Any]) -> None:
    groups = {group["id"]: group for group in results["groups"]}
    assert {"memory.hot", "memory.many", "memory.zipf", "memory.denied_hot"} <= set(groups)
    assert {f"memory.threads.{n}" for n in SMOKE.threads} <= set(groups)
    assert {f"memory.resident.{n}" for n in SMOKE.resident} <= set(groups)
    for group in results["groups"]:
        cases = {row["case"] for row in group["rows"]}
        assert group["reference"] in cases, group["id"]
        assert all(row["ns"] > 0 and math.isfinite(row["ns"]) for row in group["rows"])
    # floor, two bucketcore calls (twice: C and pure Python), six peers
    assert len(groups["memory.hot"]["rows"]) == (11 if fast_path_available() else 9)


def test_every_limiter_took_the_path_its_group_is_about(results: dict[str, Any]) -> None:
    assert [g["id"] for g in results["groups"] if "answered the other way" in g["note"]] == []


def test_the_memory_bars_are_all_measured(results: dict[str, Any]) -> None:
    by_issue = {row["bar"]: row for row in results["bars"] if row["issue"] == 2}
    assert len(by_issue) == 16
    assert all(row["result"] in (bars.PASS, bars.FAIL) for row in by_issue.values())


def test_the_rocksdb_bars_are_measured_when_the_backend_is_there(results: dict[str, Any]) -> None:
    if suite_rocksdb.available():
        pytest.skip("rocksdb:// is not merged into this branch yet")
    rows = [row for row in results["bars"] if row["issue"] == 3]
    assert len(rows) == 4
    assert all(row["result"] != bars.MISSING for row in rows)
    disk = [row for row in results["footprint"] if row["store"] == "rocksdb"]
    assert len(disk) == 1
    assert disk[0]["bytes_per_bucket"] > 0


def test_the_rocksdb_suite_shows_try_acquire_and_the_gil_during_an_fsync(
    results: dict[str, Any],
) -> None:
    if suite_rocksdb.available():
        pytest.skip("rocksdb:// is not merged into this branch yet")
    groups = {group["id"]: group for group in results["groups"]}
    many = {row["case"] for row in groups["rocksdb.many"]["rows"]}
    assert {bars.MEMORY_STORE_TRY, bars.ROCKSDB_WAL_TRY, "rocksdb periodic try_acquire"} <= many
    gil = groups["rocksdb.gil"]
    assert [row["case"] for row in gil["rows"]] == [
        suite_rocksdb.GIL_IDLE,
        suite_rocksdb.GIL_SYNCED_PUT,
        suite_rocksdb.GIL_FLUSH_WAL,
    ]
    assert gil["reference"] == suite_rocksdb.GIL_IDLE


def test_only_runs_the_suites_it_names_and_judges_every_bar(tmp_path: Path) -> None:
    if suite_rocksdb.available():
        pytest.skip("rocksdb:// is not merged into this branch yet")
    json_path, report_path = tmp_path / "results.json", tmp_path / "report.md"
    argv = ["--sizes", "smoke", "--only", "rocksdb", "--json", str(json_path)]
    assert compare.main([*argv, "--report", str(report_path)]) == 0
    written = json.loads(json_path.read_text())
    assert written["meta"]["suites"] == ["rocksdb"]
    assert {group["suite"] for group in written["groups"]} == {"rocksdb", "scaling"}
    judged = {row["bar"]: row["result"] for row in written["bars"]}
    assert [bar.text for bar in bars.BARS] == list(judged)  # every bar, from bars.py alone
    for bar in bars.BARS:
        assert (judged[bar.text] != bars.MISSING) == (bar.issue == 3), bar.text
    assert "rocksdb.gil" in report_path.read_text()


def test_an_unknown_suite_is_refused_before_anything_runs(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        compare.main(["--only", "rocksdb,redsi"])
    assert "unknown suite 'redsi'" in capsys.readouterr().err


def test_bucketcore_grants_exactly_what_the_exact_bucket_does(results: dict[str, Any]) -> None:
    ours = [row for row in results["accuracy"] if row["library"] == "bucketcore"]
    assert len(ours) == len(suite_accuracy.patterns(1.0))
    assert all(row["granted"] == row["exact"] <= row["bound"] for row in ours)
    libraries = {row["library"] for row in results["accuracy"]}
    assert len(libraries) == len(suite_accuracy.LIBRARIES)


def test_the_footprint_covers_every_memory_library(results: dict[str, Any]) -> None:
    memory = [row for row in results["footprint"] if row["store"] == "memory"]
    assert len(memory) == 8
    assert all(row["bytes_per_bucket"] > 0 for row in memory)


def test_the_report_is_written_from_these_results(results: dict[str, Any], tmp_path: Path) -> None:
    written = report.write(json.loads(json.dumps(results)), tmp_path / "benchmarks.md")
    assert all(path.exists() and path.stat().st_size > 0 for path in written)


def test_the_redis_suites_run_against_their_own_servers(tmp_path: Path) -> None:
    why = suite_redis.available() or servers.missing()
    if why:
        if IN_CI and suite_redis.available() is None:
            pytest.fail(f"under CI the Redis benchmarks must run: {why}")
        pytest.skip(why)
    suites = ("redis",) if suite_rocksdb.available() else ("redis", "backends")
    results = compare.measure(SMOKE, suites, tmp_path)
    ids = {group["id"] for group in results["groups"]}
    assert {"redis.hot", "redis.many", "redis.denied", "cluster.hot"} <= ids
    assert {f"redis.resident.{n}" for n in SMOKE.store_resident} <= ids
    assert [g["id"] for g in results["groups"] if "answered the other way" in g["note"]] == []
    if "backends" in suites:
        backends = {
            group["id"]: group for group in results["groups"] if group["suite"] == "backends"
        }
        assert set(backends) == {"backends.hot", "backends.many", "backends.denied"}
        assert all(len(group["rows"]) == 9 for group in backends.values())
    rows = [row for row in results["bars"] if row["issue"] == 4]
    assert len(rows) == 4
    assert all(row["result"] != bars.MISSING for row in rows)
    assert any(row["store"] == "redis" for row in results["footprint"])
    # The breaker bar: calls timed while our own server is stalled behind the fault proxy.
    stalled = next(group for group in results["groups"] if group["id"] == "redis.stalled")
    by_case = {row["case"]: row for row in stalled["rows"]}
    assert {bars.REDIS_STALLED_ALLOW, bars.REDIS_STALLED_LOCAL} <= set(by_case)
    assert by_case[suite_redis_faults.FIRST_FAILURE]["ns"] >= 0.5e9  # one real timeout
    breaker = [row for row in results["bars"] if row["issue"] == 15]
    assert len(breaker) == 2
    assert all(row["result"] != bars.MISSING and row["unit"] == "ms" for row in breaker)
    assert [row["ratio"] for row in breaker] == [
        by_case[bars.REDIS_STALLED_ALLOW]["ns"] / 1e6,
        by_case[bars.REDIS_STALLED_LOCAL]["ns"] / 1e6,
    ]


@pytest.mark.parametrize(
    ("p99_ms", "result"), [(0.05, bars.PASS), (4.9, bars.PASS), (5.2, bars.FAIL)]
)
def test_the_breaker_bar_is_an_absolute_p99_in_ms(p99_ms: float, result: str) -> None:
    group = {
        "id": "redis.stalled",
        "rows": [
            {"case": bars.REDIS_STALLED_ALLOW, "ns": p99_ms * 1e6},
            {"case": bars.REDIS_STALLED_LOCAL, "ns": 1e3},
        ],
    }
    rows = [row for row in bars.evaluate([group]) if row["issue"] == 15]
    assert [(row["ratio"], row["result"]) for row in rows] == [
        (pytest.approx(p99_ms), result),
        (pytest.approx(0.001), bars.PASS),
    ]
    assert f"= {p99_ms:.3f} ms | <= 5 ms |" in "\n".join(report._bars_section(rows))


def _lmdb_groups(lmdb: float, memory: float, redis: float, sqlite: float) -> list[dict[str, Any]]:
    def group(group_id: str, rows: dict[str, float]) -> dict[str, Any]:
        return {"id": group_id, "rows": [{"case": c, "ns": ns} for c, ns in rows.items()]}

    single = {
        bars.LMDB_WAL: lmdb,
        bars.MEMORY_STORE: memory,
        bars.REDIS_SINGLE: redis,
        bars.PYRATE_SQLITE: sqlite,
    }
    return [
        group("lmdb.hot", single),
        group("lmdb.many", single),
        group("processes.4", {bars.LMDB_WAL: lmdb, bars.REDIS_SINGLE: redis}),
    ]


@pytest.mark.parametrize(
    ("lmdb", "memory", "redis", "sqlite", "failed"),
    [
        (2000.0, 200.0, 40_000.0, 200_000.0, set()),
        (9000.0, 200.0, 40_000.0, 200_000.0, {"25x memory", "10x", "5x the aggregate"}),
        (2000.0, 200.0, 40_000.0, 9_000.0, {"SQLite"}),
    ],
)
def test_the_lmdb_bars_judge_the_ratios_the_issue_names(
    lmdb: float, memory: float, redis: float, sqlite: float, failed: set[str]
) -> None:
    rows = [row for row in bars.evaluate(_lmdb_groups(lmdb, memory, redis, sqlite))]
    lmdb_rows = [row for row in rows if row["issue"] == 11]
    assert len(lmdb_rows) == 7
    missed = [row["bar"] for row in lmdb_rows if row["result"] == bars.FAIL]
    assert all(row["result"] != bars.MISSING for row in lmdb_rows)
    assert {text for text in failed if any(text in bar for bar in missed)} == failed
    assert len(missed) == {0: 0, 1: 2, 3: 5}[len(failed)]


def test_the_lmdb_and_processes_suites_measure_every_case(tmp_path: Path) -> None:
    if suite_lmdb.available():
        pytest.skip(suite_lmdb.available() or "")
    why = suite_redis.available() or servers.missing()
    if why:
        if IN_CI:
            pytest.fail(f"under CI the lmdb benchmarks' Redis case must run: {why}")
        pytest.skip(why)
    results = compare.measure(SMOKE, ("lmdb", "processes"), tmp_path)
    groups = {group["id"]: group for group in results["groups"]}
    assert set(groups) == {"lmdb.hot", "lmdb.many"} | {f"processes.{n}" for n in SMOKE.processes}
    for group_id in ("lmdb.hot", "lmdb.many"):
        cases = [row["case"] for row in groups[group_id]["rows"]]
        assert cases == [
            suite_lmdb.RAW_TXN,
            bars.MEMORY_STORE,
            bars.LMDB_WAL,
            bars.LMDB_WAL_TRY,
            suite_lmdb.LMDB_PERIODIC,
            bars.REDIS_SINGLE,
            bars.PYRATE_SQLITE,
        ]
    for count in SMOKE.processes:
        cases = {row["case"] for row in groups[f"processes.{count}"]["rows"]}
        assert cases == set(suite_processes.ROLES)
        assert groups[f"processes.{count}"]["x"] == count
    assert [g["id"] for g in results["groups"] if "answered the other way" in g["note"]] == []
    rows = [row for row in results["bars"] if row["issue"] == 11]
    assert len(rows) == 7
    assert all(row["result"] != bars.MISSING for row in rows)
    written = report.write(results, tmp_path / "report.md")
    assert tmp_path / "report" / "processes.png" in written
    text = (tmp_path / "report.md").read_text()
    assert "Several processes on one host" in text
    assert "lmdb:// `acquire`, one hot key:" in text


def test_the_outbound_suite_measures_its_bars(tmp_path: Path) -> None:
    results = compare.measure(SMOKE, ("outbound",), tmp_path)
    groups = {group["id"]: group for group in results["groups"]}
    assert {"outbound.overhead", "outbound.rate"} <= set(groups)
    rows = {row["bar"]: row for row in results["bars"] if row["issue"] == 16}
    assert len(rows) == 3
    measured = [row for row in rows.values() if row["result"] != bars.MISSING]
    assert len(measured) == (3 if "outbound.rate_burst1" in groups else 2)
