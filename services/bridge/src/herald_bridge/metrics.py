"""Prometheus metrics of one bridge process (own registry, no global state)."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest


class Metrics:
    def __init__(self, *, nats_connected: Callable[[], float]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        Gauge(
            "herald_bridge_nats_connected", "1 while the NATS connection is up, else 0.", registry=self.registry
        ).set_function(nats_connected)
        self.active = Gauge(
            "herald_bridge_active",
            "1 while this bridge holds the lease and publishes, 0 while it stands by.",
            registry=self.registry,
        )
        self.events = Counter(
            "herald_bridge_events", "Events published to all of their topics.", registry=self.registry
        )
        self.publications = Counter(
            "herald_bridge_publications",
            "Topic publications stored by JetStream (one event makes one per topic).",
            registry=self.registry,
        )
        self.publish_failures = Counter(
            "herald_bridge_publish_failures",
            "Event publish attempts that failed and were retried.",
            registry=self.registry,
        )
        self.undecodable = Counter(
            "herald_bridge_undecodable_events",
            "Events skipped because they could not be decoded.",
            registry=self.registry,
        )
        self.lag_events = Gauge(
            "herald_bridge_lag_events",
            "Events stream last sequence minus the bridge checkpoint: events not bridged yet.",
            registry=self.registry,
        )
        self.lag_seconds = Gauge(
            "herald_bridge_lag_seconds",
            "Age of the oldest event not bridged yet (0 when none is waiting).",
            registry=self.registry,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
