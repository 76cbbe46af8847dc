"""Prometheus counters for the decisions the integrations make.

``PrometheusHook`` is an ``on_decision`` hook (``bucketcore.hooks``) that
counts ``bucketcore_decisions_total{limit, outcome}`` and
``bucketcore_store_errors_total{error}``. Labels are pool names (or specs)
and exception class names, never keys, so the series stay few however many
clients there are. Needs ``pip install 'bucketcore[prometheus]'``.

>>> from prometheus_client import CollectorRegistry
>>> from bucketcore import Limit, Limiter
>>> from bucketcore.integrations.hooks import DecisionEvent
>>> registry = CollectorRegistry()
>>> hook = PrometheusHook(registry)
>>> limit = Limit(7, 30, name="general")
>>> decision = Limiter().acquire("user:alice", limit)
>>> hook(DecisionEvent.of("user:alice", (limit,), decision, source="/pizza"))
>>> labels = {"limit": "general", "outcome": "allowed"}
>>> registry.get_sample_value("bucketcore_decisions_total", labels)
1.0
"""

from __future__ import annotations

from bucketcore.errors import ConfigurationError
from bucketcore.integrations.hooks import DecisionEvent

try:
    from prometheus_client import REGISTRY, CollectorRegistry, Counter
except ImportError as exc:  # pragma: no cover - exercised without the extra installed
    raise ConfigurationError(
        f"bucketcore.prometheus needs: pip install 'bucketcore[prometheus]' ({exc})"
    ) from exc

__all__ = ["PrometheusHook"]


class PrometheusHook:
    """Count decisions by limit and outcome, and store errors by type.

    Pass ``registry`` to keep the counters out of the global default (one
    hook per registry: a second on the same registry is refused by
    prometheus-client as a duplicate).
    """

    def __init__(
        self, registry: CollectorRegistry | None = None, *, namespace: str = "bucketcore"
    ) -> None:
        target = registry if registry is not None else REGISTRY
        self.decisions = Counter(
            "decisions",
            "Rate-limit decisions, by limit and outcome (allowed, denied, degraded, error).",
            ["limit", "outcome"],
            namespace=namespace,
            registry=target,
        )
        self.store_errors = Counter(
            "store_errors",
            "Store failures seen while deciding, by exception type.",
            ["error"],
            namespace=namespace,
            registry=target,
        )

    def __call__(self, event: DecisionEvent) -> None:
        self.decisions.labels(event.limit_name, event.outcome).inc()
        if event.error is not None:
            self.store_errors.labels(type(event.error).__name__).inc()
