"""Path patterns for route rules: ``/pizza``, ``/items/{id}``, ``/api/*``.

A pattern is matched segment by segment against the request's route
template, where the framework has one (Starlette and FastAPI routes:
``/items/{item_id}``; Flask and Django converters ``<int:pk>`` count as a
parameter too), and against its path. ``{name}`` matches any one segment,
a final ``*`` any rest (none included). Trailing slashes are ignored on
both sides: ``/x`` and ``/x/`` are the same path to a rule, so the
redirect a framework answers for one of them is limited too.

A pattern that could never match anything is refused when it is made, and
``could_match`` tells, at start-up, whether any of the app's routes could
ever reach it (docs/design.md §5).

>>> PathPattern("/items/{id}").matches("/items/42")
True
>>> PathPattern("/items/{id}").matches("/items/42/", template="/items/{item_id:int}")
True
>>> PathPattern("/api/*/x")
Traceback (most recent call last):
...
bucketcore.errors.ConfigurationError: '*' in '/api/*/x' is only allowed as the last segment ...
"""

from __future__ import annotations

from bucketcore.errors import ConfigurationError

__all__ = ["PathPattern", "segments"]

_PARAM = "\0param"  # one segment, any value
_REST = "\0rest"  # any number of segments (a "*" in a pattern, "{p:path}" in a template)


def _is_param(segment: str) -> bool:
    return (segment.startswith("{") and segment.endswith("}")) or (
        segment.startswith("<") and segment.endswith(">")
    )


def segments(path: str) -> tuple[str, ...]:
    """The segments of a path or template; parameters and rests marked.

    >>> segments("/items/{id}/") == ("items", _PARAM)
    True
    >>> segments("/files/{rest:path}") == ("files", _REST)
    True
    """
    parts = path.strip("/").split("/") if path.strip("/") else []
    marked = []
    for part in parts:
        if _is_param(part):
            inner = part[1:-1]
            is_rest = inner.endswith(":path") or inner.startswith("path:")
            marked.append(_REST if is_rest else _PARAM)
        else:
            marked.append(part)
    return tuple(marked)


class PathPattern:
    """A rule's path pattern, checked when made; see the module docstring.

    >>> PathPattern("/api/*").matches("/api"), PathPattern("/api/*").matches("/apix")
    (True, False)
    """

    __slots__ = ("_parts", "pattern")

    def __init__(self, pattern: str) -> None:
        if type(pattern) is not str or not pattern.startswith("/"):
            raise ConfigurationError(f"a rule's path starts with '/', got {pattern!r}")
        if any(c in pattern for c in "?# \t\r\n"):
            raise ConfigurationError(
                f"{pattern!r} would never match: a path has no query, fragment or spaces"
            )
        raw = pattern.strip("/").split("/") if pattern.strip("/") else []
        for index, part in enumerate(raw):
            if "*" in part and (part != "*" or index != len(raw) - 1):
                raise ConfigurationError(
                    f"'*' in {pattern!r} is only allowed as the last segment (as in '/api/*'): "
                    "it would never match"
                )
            if not part and index < len(raw) - 1:
                raise ConfigurationError(f"{pattern!r} has an empty segment: it never matches")
        self.pattern = pattern
        parts = segments(pattern)
        if parts and parts[-1] == "*":
            parts = (*parts[:-1], _REST)
        self._parts = parts

    def __repr__(self) -> str:
        return f"PathPattern({self.pattern!r})"

    def _match(self, target: tuple[str, ...], *, loose: bool) -> bool:
        """Segment by segment; ``loose``: a template's parameter may be any literal."""
        for index, part in enumerate(self._parts):
            if part == _REST:
                return True
            if index >= len(target):
                return False
            given = target[index]
            if given == _REST:
                return loose
            if part in (_PARAM, given):
                continue
            if not (loose and given == _PARAM):
                return False
        return len(target) == len(self._parts)

    def matches(self, path: str, template: str | None = None) -> bool:
        """True when the request to ``path`` (routed to ``template``) is this rule's.

        >>> PathPattern("/items/42").matches("/items/42", template="/items/{id}")
        True
        """
        if template is not None and self._match(segments(template), loose=False):
            return True
        return self._match(segments(path), loose=False)

    def could_match(self, template: str) -> bool:
        """True when some request routed to ``template`` could match this pattern.

        >>> PathPattern("/items/42").could_match("/items/{id}")
        True
        >>> PathPattern("/pizzas").could_match("/pizza")
        False
        """
        return self._match(segments(template), loose=True)
