"""The report generator, on a small fixed results file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import report

RESULTS = Path(__file__).parent / "data" / "bench_results_small.json"


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, list[Path]]:
    """The report and charts written once from the fixed file: (markdown, files)."""
    results = json.loads(RESULTS.read_text(encoding="utf-8"))
    files = report.write(results, tmp_path_factory.mktemp("docs") / "benchmarks.md")
    return files[0].read_text(encoding="utf-8"), files


def test_the_bars_table_gives_each_bar_its_ratio_and_verdict(
    written: tuple[str, list[Path]],
) -> None:
    text, _ = written
    assert "1 of 3 bars pass." in text
    assert (
        "| #2 | try_acquire <= 1.0x falconry consume (one hot key) | bucketcore try_acquire / "
        "token-bucket (falconry) consume = 0.900x | <= 1 | PASS |"
    ) in text
    assert "= 1.800x | <= 1.5 | **FAIL** |" in text
    assert "| **NOT MEASURED** |" in text  # the redis bar: its group is not in the file


def test_each_group_is_a_table_of_ns_and_ratios_to_its_floor(
    written: tuple[str, list[Path]],
) -> None:
    text, _ = written
    assert "#### one hot key, allowed" in text
    assert "| floor: dict + lock + monotonic_ns | floor | 500 ns | 1.00x | 2,000,000 |" in text
    assert "| bucketcore try_acquire | bucketcore | 900 ns | 1.80x | 1,111,111 |" in text
    assert "| limits fixed window | peer | 9,000 ns | 18.00x | 111,111 |" in text


def test_the_peer_matrix_divides_each_peer_by_bucketcore(written: tuple[str, list[Path]]) -> None:
    text, _ = written
    assert "| one hot key, allowed | bucketcore try_acquire | 1.11x | 10.00x |" in text


def test_accuracy_and_footprint_tables(written: tuple[str, list[Path]]) -> None:
    text, _ = written
    assert "| steady: 5/s burst 1 | bucketcore | 101 | 11 | 11 | 11.0 | +0 |" in text
    assert (
        "| steady: 5/s burst 1 | limits fixed window (5 per 1 s) | 101 | 15 | 11 | 11.0 | +4 |"
        in text
    )
    assert "| bucketcore memory:// | memory | 135 | 1,000 | tracemalloc |" in text


def test_every_chart_is_a_png_the_report_embeds(written: tuple[str, list[Path]]) -> None:
    text, files = written
    charts = [path for path in files if path.suffix == ".png"]
    assert {path.name for path in charts} == {
        "memory.png",
        "memory.threads.png",
        "accuracy.png",
        "footprint.png",
    }
    for path in charts:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"](benchmarks/{path.name})" in text
