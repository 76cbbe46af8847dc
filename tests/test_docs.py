"""The documentation: the site builds strictly, and every Python example in it runs.

Every fenced ```python block of README.md, examples/README.md and docs/**/*.md
is executed; the blocks of one file run in order in one namespace (a page
reads as one session), in a temporary working directory, with
``BUCKETCORE_URL`` unset. A block followed by a line ``prints`` and a
```text block must print exactly that text.

A block that is not meant to run (or needs a server) says so in an HTML
comment on the line before it, which neither GitHub nor the site shows:

- ``<!-- docs-test: skip, <reason> -->``: not run; the reason is required.
- ``<!-- docs-test: redis -->``: run against the test Redis server
  (support/servers.py), with ``localhost:6379`` and ``port=6379`` in the
  block pointed at it.
- ``<!-- docs-test: redis-cluster -->``: run against the test 3-master
  cluster, with ``10.0.0.1:7000`` pointed at its first node.

Shell commands (```sh and ```text blocks) are not run here: their shown
output was pasted from real runs.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

_MARKER = re.compile(r"<!--\s*docs-test:\s*(?P<mode>[\w-]+)\s*(?:,\s*(?P<reason>.*?))?\s*-->")
_MODES = ("skip", "redis", "redis-cluster")


@dataclass(frozen=True)
class CodeBlock:
    """One ```python block: its source, first line (1-based), marker and expected output."""

    path: Path
    line: int
    source: str
    mode: str | None = None
    reason: str | None = None
    expected_output: str | None = None


def doc_files() -> list[Path]:
    """The Markdown files whose examples must run."""
    pages = sorted((ROOT / "docs").rglob("*.md"))
    pages = [page for page in pages if not page.name.startswith("benchmarks-quick")]
    files = [ROOT / "README.md", ROOT / "examples" / "README.md", *pages]
    return files


def _fence_end(lines: list[str], start: int, path: Path) -> int:
    for index in range(start, len(lines)):
        if lines[index].strip() == "```":
            return index
    raise AssertionError(f"{path}:{start}: a code fence is never closed")


def code_blocks(text: str, path: Path) -> list[CodeBlock]:
    """The ```python blocks of ``text`` with their markers and expected output.

    >>> text = "<!-- docs-test: skip, no server -->\\n```python\\nboom()\\n```\\n"
    >>> [(b.line, b.mode, b.reason) for b in code_blocks(text, Path("x.md"))]
    [(3, 'skip', 'no server')]
    """
    lines = text.splitlines()
    blocks: list[CodeBlock] = []
    index = 0
    while index < len(lines):
        fence = lines[index].strip()
        if not fence.startswith("```") or fence == "```":
            index += 1
            continue
        end = _fence_end(lines, index + 1, path)
        if fence.split()[0] == "```python":
            mode = reason = None
            previous = lines[index - 1] if index else ""
            marker = _MARKER.fullmatch(previous.strip())
            if marker:
                mode, reason = marker["mode"], marker["reason"]
                assert mode in _MODES, f"{path}:{index}: unknown docs-test mode {mode!r}"
                assert mode != "skip" or reason, f"{path}:{index}: a skip must give its reason"
            blocks.append(
                CodeBlock(
                    path,
                    index + 2,
                    "\n".join(lines[index + 1 : end]) + "\n",
                    mode,
                    reason,
                    _expected_output(lines, end + 1, path),
                )
            )
        index = end + 1
    return blocks


def _expected_output(lines: list[str], index: int, path: Path) -> str | None:
    """The ```text block after a ``prints`` line that follows a code block, if any."""
    while index < len(lines) and not lines[index].strip():
        index += 1
    if index >= len(lines) or lines[index].strip() != "prints":
        return None
    index += 1
    while index < len(lines) and not lines[index].strip():
        index += 1
    assert lines[index].strip() == "```text", f"{path}:{index + 1}: 'prints' needs a ```text block"
    end = _fence_end(lines, index + 1, path)
    return "\n".join(lines[index + 1 : end]) + "\n"


def run_blocks(blocks: list[CodeBlock], servers: dict[str, str]) -> int:
    """Execute ``blocks`` in order in one namespace; returns how many ran.

    ``servers`` maps a mode (``redis``) to the ``host:port`` to use. A
    traceback names the Markdown file and line of the failing statement.
    """
    namespace: dict[str, object] = {"__name__": "docs_example"}
    ran = 0
    for block in blocks:
        if block.mode == "skip":
            continue
        source = block.source
        if block.mode == "redis":
            host, port = servers["redis"].rsplit(":", 1)
            source = source.replace("localhost:6379", f"{host}:{port}")
            source = source.replace('host="localhost", port=6379', f'host="{host}", port={port}')
        elif block.mode == "redis-cluster":
            source = source.replace("10.0.0.1:7000", servers["redis-cluster"])
        code = compile("\n" * (block.line - 1) + source, str(block.path), "exec")
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            exec(code, namespace)  # noqa: S102 - the examples are ours, and running them is the test
        if block.expected_output is not None:
            assert printed.getvalue() == block.expected_output, (
                f"{block.path}:{block.line}: the block printed\n{printed.getvalue()}"
                f"but the page shows\n{block.expected_output}"
            )
        ran += 1
    return ran


@pytest.mark.parametrize("path", doc_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_python_block_runs(
    path: Path, request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocks = code_blocks(path.read_text(encoding="utf-8"), path)
    servers: dict[str, str] = {}
    modes = {block.mode for block in blocks}
    if "redis" in modes:
        servers["redis"] = f"127.0.0.1:{request.getfixturevalue('redis_server').port}"
    if "redis-cluster" in modes:
        servers["redis-cluster"] = request.getfixturevalue("redis_cluster").url.split("//")[1]
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("BUCKETCORE_URL", raising=False)
    run_blocks(blocks, servers)


def test_the_pages_that_teach_have_examples_to_run() -> None:
    for name in ("README.md", "docs/getting-started.md", "docs/integrations/flask.md"):
        path = ROOT / name
        assert [b for b in code_blocks(path.read_text(encoding="utf-8"), path) if b.mode is None]


def test_a_block_that_fails_or_prints_something_else_fails_the_test(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    raising = "Intro.\n\n```python\nx = 1\n```\n\n```python\nassert x == 2\n```\n"
    with pytest.raises(AssertionError) as failure:
        run_blocks(code_blocks(raising, page), {})
    assert failure.traceback[-1].lineno + 1 == 8  # the Markdown line of the assert
    wrong = "```python\nprint('hello')\n```\n\nprints\n\n```text\nhullo\n```\n"
    with pytest.raises(AssertionError, match="printed"):
        run_blocks(code_blocks(wrong, page), {})
    skipped = "<!-- docs-test: skip, needs a TLS server -->\n```python\nboom()\n```\n"
    assert run_blocks(code_blocks(skipped, page), {}) == 0


def test_a_skip_without_a_reason_is_refused() -> None:
    with pytest.raises(AssertionError, match="reason"):
        code_blocks("<!-- docs-test: skip -->\n```python\npass\n```\n", Path("x.md"))


def test_the_site_builds_strictly(tmp_path: Path) -> None:
    try:
        import mkdocs  # noqa: F401
    except ImportError:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("mkdocs is required under CI=true (pip install -e '.[docs]')")
        pytest.skip("mkdocs not installed (pip install -e '.[docs]')")
    site = tmp_path / "site"
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert (site / "index.html").is_file()
    assert 'id="bucketcore.Limiter"' in (site / "reference" / "core" / "index.html").read_text()
