"""``lmdb:///path``: exact limits shared by every worker process of one host.

Each decision is one LMDB write transaction over a memory map that every
process opening the directory shares; LMDB's writer lock makes it exclusive
across processes and survives a writer killed -9. There is no server, no
owner and no lock file of ours: any number of processes and threads open
one path at once (gunicorn -w 4, uvicorn --workers, Celery prefork).

- ``records``: the record struct, record keys, the time anchor.
- ``env``: opening, map growth, fork handling, durability.
- ``options``: URLs and options.
- ``sweep``: the lazy sweep of full records.
- ``store``: ``LMDBStore``, ``open_store``.

``lmdb:///var/lib/app/limits`` is an absolute path; ``lmdb://./limits`` is
relative to the working directory. Options: ``durability`` (``wal``,
``sync``, ``periodic``), ``flush_interval``, ``map_size``, ``create``.

>>> import tempfile, os
>>> from bucketcore import Limit, Limiter
>>> path = os.path.join(tempfile.mkdtemp(), "limits")
>>> with Limiter(f"lmdb://{path}") as limiter:
...     limiter.acquire("alice", Limit(3, 60.0)).remaining
2
>>> with Limiter(f"lmdb://{path}?durability=sync") as limiter:   # later, or elsewhere
...     limiter.acquire("alice", Limit(3, 60.0)).remaining
1
"""

from .env import DURABILITIES
from .store import LMDBStore, open_store

__all__ = ["DURABILITIES", "LMDBStore", "open_store"]
