"""The C fast path of memory:// and rocksdb:// wal (the rest is in pyproject.toml).

It is optional: without a C compiler, or on another Python than CPython, the
build skips it and bucketcore runs its pure-Python path, which decides the
same things (the tests compare the two).
"""

import platform

from setuptools import Extension, setup

extensions = []
if platform.python_implementation() == "CPython":
    extensions.append(Extension("bucketcore._fastpath", ["bucketcore/_fastpath.c"], optional=True))

setup(ext_modules=extensions)
