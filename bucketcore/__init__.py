"""bucketcore: an exact, embedded token-bucket rate limiter.

>>> from bucketcore import Limit, Limiter
>>> limiter = Limiter("memory://")
>>> limiter.acquire("alice", Limit.parse("7/30s")).remaining
6
"""

import importlib.metadata
import importlib.util
import os
import sys

from bucketcore.decision import Decision
from bucketcore.errors import (
    BucketError,
    ConfigurationError,
    CorruptState,
    RateLimited,
    StoreClosed,
    StoreError,
    StoreLocked,
    StoreUnavailable,
)
from bucketcore.integrations.guard import rate_limited
from bucketcore.limit import Limit
from bucketcore.limiter import AsyncLimiter, Limiter
from bucketcore.store import AsyncStore, Store

__all__ = [
    "AsyncLimiter",
    "AsyncStore",
    "BucketError",
    "ConfigurationError",
    "CorruptState",
    "Decision",
    "Limit",
    "Limiter",
    "RateLimited",
    "Store",
    "StoreClosed",
    "StoreError",
    "StoreLocked",
    "StoreUnavailable",
    "rate_limited",
]


def _installed_version() -> str:
    """The version of the installed distribution: pyproject.toml is the one source."""
    try:
        return importlib.metadata.version("bucketcore")
    except importlib.metadata.PackageNotFoundError:  # imported from a checkout, not installed
        return "0+unknown"


def _adopt_checkout_backends() -> None:
    """Make ``bucketcore.backends`` importable from a checkout's own ``./bucketcore``.

    The repository keeps the backends in a top-level ``backends/`` that
    installs as ``bucketcore.backends`` (docs/design.md §1). A program started
    from the checkout's root imports ``./bucketcore`` (the working directory
    comes first on ``sys.path``), which has no ``backends`` of its own, so an
    installed copy's backends would be unreachable. In a checkout, load the
    sibling ``backends/`` as that subpackage; an installed package has its
    own ``bucketcore/backends`` and is left alone.
    """
    here = os.path.dirname(os.path.abspath(__file__))
    checkout_backends = os.path.join(os.path.dirname(here), "backends")
    init = os.path.join(checkout_backends, "__init__.py")
    if os.path.isdir(os.path.join(here, "backends")) or not os.path.isfile(init):
        return
    if "bucketcore.backends" in sys.modules:
        return
    spec = importlib.util.spec_from_file_location(
        "bucketcore.backends", init, submodule_search_locations=[checkout_backends]
    )
    if spec is None or spec.loader is None:  # pragma: no cover - a file that exists has a spec
        return
    module = importlib.util.module_from_spec(spec)
    sys.modules["bucketcore.backends"] = module
    spec.loader.exec_module(module)


__version__ = _installed_version()
_adopt_checkout_backends()
