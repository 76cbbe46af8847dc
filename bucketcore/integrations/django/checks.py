"""The start-up check: a limit that would not limit is refused before serving.

Registered as a Django system check (``manage.py check``, ``runserver``,
``migrate`` and the test runner run it; add
``"bucketcore.integrations.django"`` to ``INSTALLED_APPS`` so it is
registered before they do) and run again by ``RateLimitMiddleware`` when
the server loads it (gunicorn runs no system checks). It finds:

- ``bucketcore.E001``: a ``BUCKETCORE_*`` setting that is wrong;
- ``bucketcore.E002``: one pool name with two different limits;
- ``bucketcore.E003``: a key function that returns neither a str, bytes
  nor None for a plain request;
- ``bucketcore.E004``: a limit function (a plan) that returns no valid
  spec, or a cost above its burst, for a plain request;
- ``bucketcore.E005``: a DRF scope of ``RateLimitThrottle`` with no rate,
  or a rate that cannot parse.

A spec that cannot parse, or a fixed cost above its burst, already raised
when ``@limit`` ran (at import). The probe is a blank ``GET /``: a
function that raises on it (it wants a logged-in user) is left to the
request, where its error names it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from django.core import checks
from django.core.exceptions import ImproperlyConfigured

from bucketcore.errors import ConfigurationError
from bucketcore.integrations.django.config import Config
from bucketcore.integrations.django.views import own_policies
from bucketcore.integrations.http import Policy, PoolRegistry

__all__ = ["check_rate_limits", "configuration_errors"]

_KEY_TYPES = (str, bytes, type(None))


def _views(patterns: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(route, view) for every URL pattern, into included URLconfs."""
    for pattern in patterns:
        route = prefix + str(pattern.pattern)
        if hasattr(pattern, "url_patterns"):
            yield from _views(pattern.url_patterns, route)
        else:
            yield route, pattern.callback


def _probe() -> Any:
    from django.test import RequestFactory

    return RequestFactory().get("/")


def _policy_errors(policy: Policy[Any], where: str, config: Config) -> list[checks.Error]:
    errors: list[checks.Error] = []
    request = _probe()
    key = policy.key or config.options.key
    try:
        named = key(request)
    except Exception:
        named = None
    if not isinstance(named, _KEY_TYPES):
        name = getattr(key, "__qualname__", repr(key))
        errors.append(
            checks.Error(
                f"the key function {name} {where} returned {named!r} ({type(named).__name__})",
                hint="a key function returns a str, bytes or None (cannot tell)",
                id="bucketcore.E003",
            )
        )
    if policy.limits is None and callable(policy.spec):
        try:
            given = policy.spec(request)
        except Exception:
            return errors
        try:
            Policy(given, name=policy.name, cost=policy.cost)
        except (ConfigurationError, TypeError) as exc:
            name = getattr(policy.spec, "__qualname__", repr(policy.spec))
            errors.append(
                checks.Error(
                    f"the limit function {name} {where} returned {given!r}: {exc}",
                    hint="a limit function returns a spec like '7/30s', a Limit or Limits",
                    id="bucketcore.E004",
                )
            )
    return errors


def _throttle_errors(view: Any, where: str, pools: PoolRegistry) -> list[checks.Error]:
    from bucketcore.integrations.django.drf import RateLimitThrottle, scope_policy

    view_class = getattr(view, "cls", None)  # a DRF APIView's as_view()
    errors: list[checks.Error] = []
    for throttle_class in getattr(view_class, "throttle_classes", ()):
        if not (isinstance(throttle_class, type) and issubclass(throttle_class, RateLimitThrottle)):
            continue
        throttle = throttle_class()
        scope = throttle.get_scope(view_class)
        try:
            policy = scope_policy(scope, throttle.get_rate(scope))
        except ImproperlyConfigured as exc:
            errors.append(checks.Error(f"{exc} {where}", id="bucketcore.E005"))
            continue
        assert policy.limits is not None  # a rate is a fixed spec
        try:
            pools.register(policy.limits, f"in DEFAULT_THROTTLE_RATES {where}")
        except ConfigurationError as exc:
            errors.append(checks.Error(str(exc), id="bucketcore.E002"))
    return errors


def configuration_errors() -> list[checks.CheckMessage]:
    """Every error the check reports, for the settings and the root URLconf."""
    try:
        config = Config.read()
    except ConfigurationError as exc:
        return [checks.Error(str(exc), id="bucketcore.E001")]
    try:
        from django.urls import get_resolver

        views = list(_views(get_resolver().url_patterns))
    except Exception:  # Django's own URL check reports a URLconf that fails
        return []
    errors: list[checks.CheckMessage] = []
    pools = PoolRegistry()
    if config.default is not None and config.default.limits is not None:
        pools.register(config.default.limits, "in BUCKETCORE_DEFAULT")
    seen: set[int] = set()
    for route, view in views:
        handler = getattr(view, "view_class", None) or view
        where = f"at /{route} ({getattr(handler, '__qualname__', handler)})"
        methods = ["get", "post", "put", "patch", "delete", "head", "options"]
        for method in [None, *methods]:
            for policy in own_policies(view, method):
                if id(policy) in seen:
                    continue
                seen.add(id(policy))
                if policy.limits is not None:
                    try:
                        pools.register(policy.limits, where)
                    except ConfigurationError as exc:
                        errors.append(checks.Error(str(exc), id="bucketcore.E002"))
                errors.extend(_policy_errors(policy, where, config))
        errors.extend(_throttle_errors(view, where, pools))
    return errors


def check_rate_limits(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """The Django system check: see the module docstring."""
    return configuration_errors()


checks.register(check_rate_limits, "bucketcore")
