"""Prometheus metrics for the security events: ``sitewarden_events_total{event="…"}``.

:class:`Metrics` is an :mod:`~sitewarden.events` sink that counts every event by name
(whatever its level) in its own ``CollectorRegistry``, so several sites (Wardens) in one
process never collide and nothing is added to prometheus_client's global registry.
:meth:`Metrics.exposition` returns the text for the engine to serve at
``policy.metrics_path`` (to management networks only: the counts tell an attacker which
of their attempts were noticed).

``prometheus_client`` is optional: ``pip install 'sitewarden[metrics]'``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from sitewarden.errors import ConfigError
from sitewarden.events import KNOWN_EVENTS

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry, Counter

__all__ = ["INSTALL_HINT", "MAX_EVENT_NAMES", "Metrics"]

#: How to get the optional dependency.
INSTALL_HINT = "pip install 'sitewarden[metrics]'"
#: Distinct event names counted at most; further names count as "other" (a bug emitting
#: names built from request data must not grow the exposition without bound).
MAX_EVENT_NAMES = 200


class Metrics:
    """Count security events by name (a sink; see the module docstring).

    *events*: names whose counters exist from the start at zero (default: every event
    sitewarden emits), so ``rate()`` and alerts work before the first occurrence.
    """

    def __init__(self, events: Iterable[str] = KNOWN_EVENTS) -> None:
        """Create the registry and the counter; raise ConfigError without prometheus_client."""
        try:
            from prometheus_client import CollectorRegistry, Counter
        except ImportError:
            raise ConfigError(
                f"metrics need the prometheus_client package: {INSTALL_HINT}"
            ) from None
        self.registry: CollectorRegistry = CollectorRegistry(auto_describe=True)
        self._counter: Counter = Counter(
            "sitewarden_events",
            "Security events emitted by sitewarden, by event name.",
            ["event"],
            registry=self.registry,
        )
        self._children: dict[str, Any] = {}
        self._lock = threading.Lock()
        for name in events:
            self._child(name)

    def _child(self, name: str) -> Any:
        child = self._children.get(name)
        if child is None:
            with self._lock:
                if name not in self._children and len(self._children) >= MAX_EVENT_NAMES:
                    name = "other"
                child = self._children.get(name)
                if child is None:
                    child = self._counter.labels(event=name)
                    self._children[name] = child
        return child

    def __call__(self, record: Mapping[str, Any], level: int) -> None:
        """Count *record* under its event name (the level is not a label)."""
        name = record.get("event")
        self._child(name if isinstance(name, str) else "unknown").inc()

    def count(self, event: str) -> float:
        """Return how many *event* events were counted so far."""
        value = self.registry.get_sample_value("sitewarden_events_total", {"event": event})
        return 0.0 if value is None else value

    def exposition(self) -> tuple[bytes, str]:
        """Return the metrics in Prometheus text format and the matching Content-Type."""
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST
