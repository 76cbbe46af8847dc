"""What the tests and the benchmarks share: our own Redis servers (``support.servers``).

Development only: not part of the wheel (pyproject's packages name only
``bucketcore``), importable because pytest and ``python -m benchmarks.compare``
run from the repository root.
"""
