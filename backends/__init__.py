"""Store adapters, installed as ``bucketcore.backends``.

Each module implements ``bucketcore.store.Store`` and imports its optional
dependency itself: ``rocksdb`` (rocksdict, filelock) and ``redis`` (redis-py).
"""
