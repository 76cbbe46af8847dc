"""A memory:// store inherited by a forked child says, once, that its limits are per process."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent(
    """
    import logging, os, sys
    from bucketcore import Limit, Limiter
    logging.basicConfig(stream=sys.stdout, format="%(levelname)s %(message)s")
    stores = [Limiter("memory://") for _ in range(int(sys.argv[1]))]
    pid = os.fork()
    if pid == 0:
        for limiter in stores:
            limiter.try_acquire("k", Limit(1, 1.0))
        sys.stdout.flush()
        os._exit(0)
    os.waitpid(pid, 0)
    """
)


@pytest.mark.parametrize(("stores", "warnings"), [(0, 0), (1, 1), (3, 1)])
def test_a_forked_child_warns_once_when_it_holds_memory_stores(stores: int, warnings: int) -> None:
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(stores)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    lines = [line for line in result.stdout.splitlines() if "per process" in line]
    assert len(lines) == warnings, result.stdout
    assert all(line.startswith("WARNING") for line in lines)
