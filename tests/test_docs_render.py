"""The built site, opened in headless Chromium: the pages render (``make docs-check``).

Serves ``site/`` (built by ``make docs``) on a free loopback port, has
Chromium render the index and one API page, checks the rendered DOM (the
theme's navigation and the page's own content are there, so the page is
not a bare error) and saves a screenshot of each under ``site/_screens/``.
Out of the default run (marker ``docs_check``): it needs Debian's
``chromium`` and a built site.
"""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SITE = ROOT / "site"
SCREENS = SITE / "_screens"

pytestmark = pytest.mark.docs_check


def _missing(what: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{what} is required under CI=true")
    pytest.skip(f"{what} not found")


@pytest.fixture(scope="module")
def site_url() -> Iterator[str]:
    if not (SITE / "index.html").is_file():
        _missing("a built site (make docs)")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(SITE))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _chromium(*args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None:
        _missing("chromium (apt-get install chromium)")
        raise AssertionError("unreachable")
    return subprocess.run(
        # root in a container has no user namespace for the sandbox
        [binary, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("page", "screen", "expected"),
    [
        ("/", "index.png", "An exact, embedded token-bucket rate limiter"),
        ("/reference/core/", "api-core.png", "bucketcore.Limiter"),
    ],
)
def test_page_renders(site_url: str, page: str, screen: str, expected: str) -> None:
    dom = _chromium("--dump-dom", site_url + page)
    assert dom.returncode == 0, dom.stderr
    assert 'class="md-nav' in dom.stdout  # the theme's navigation was rendered
    assert expected in dom.stdout
    SCREENS.mkdir(parents=True, exist_ok=True)
    path = SCREENS / screen
    path.unlink(missing_ok=True)
    shot = _chromium("--window-size=1280,1000", f"--screenshot={path}", site_url + page)
    assert shot.returncode == 0, shot.stderr
    assert path.stat().st_size > 10_000  # a blank page compresses to far less
