"""Griffe extensions for the API pages (mkdocs.yml loads this file).

``CheckoutBackends``: the checkout keeps the store adapters in a top-level
``backends/`` that installs as ``bucketcore.backends`` (docs/design.md §1);
griffe reads the source tree, where ``bucketcore/`` has no ``backends`` of
its own. After ``bucketcore`` is loaded, load ``backends`` from the same
search path and hang it under ``bucketcore``, so
``::: bucketcore.backends.redis.RedisStore`` resolves on the public path.

``DoctestFences``: the docstrings carry plain doctest examples (``>>>``
lines, which the tests run); Markdown would read them as nested quotes.
Wrap each example in a ``pycon`` fence so it renders as code.
"""

from __future__ import annotations

from typing import Any

import griffe


class CheckoutBackends(griffe.Extension):
    """Attach the checkout's ``backends`` package as ``bucketcore.backends``."""

    def on_package(self, *, pkg: griffe.Module, loader: griffe.GriffeLoader, **kwargs: Any) -> None:
        if pkg.name != "bucketcore" or "backends" in pkg.members:
            return
        backends = loader.load("backends")
        if isinstance(backends, griffe.Module):
            pkg.set_member("backends", backends)


def fence_doctests(text: str) -> str:
    r"""Put each run of ``>>>`` lines and their output (up to a blank line) in a fence.

    >>> fence_doctests("Adds.\n\n>>> 1 + 1\n2\n\nDone.").splitlines()
    ['Adds.', '', '```pycon', '>>> 1 + 1', '2', '```', '', 'Done.']
    """
    out: list[str] = []
    in_example = False
    indent = ""
    for line in text.splitlines():
        stripped = line.lstrip()
        if not in_example and stripped.startswith(">>>"):
            indent = line[: len(line) - len(stripped)]
            out.append(f"{indent}```pycon")
            in_example = True
        elif in_example and not stripped:
            out.append(f"{indent}```")
            in_example = False
        out.append(line)
    if in_example:
        out.append(f"{indent}```")
    return "\n".join(out)


class DoctestFences(griffe.Extension):
    """Render doctest examples in docstrings as code blocks."""

    def on_object(self, *, obj: griffe.Object, loader: griffe.GriffeLoader, **kwargs: Any) -> None:
        if obj.docstring is not None and ">>>" in obj.docstring.value:
            obj.docstring.value = fence_doctests(obj.docstring.value)
