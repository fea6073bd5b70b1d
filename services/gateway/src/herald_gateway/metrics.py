"""Prometheus metrics of one gateway process (own registry, no global state)."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from herald_common.loopmetrics import LoopCounter, LoopHistogram

CONTENT_TYPE = CONTENT_TYPE_LATEST

#: Seconds from storage on ``topics.*`` to the frame handed to the sockets.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    def __init__(
        self,
        *,
        connections: Callable[[], float],
        subscriptions: Callable[[], float],
        nats_subscriptions: Callable[[], float],
        tasks: Callable[[], float],
        nats_connected: Callable[[], float] = lambda: 0.0,
        presence_entries: Callable[[], float] = lambda: 0.0,
        presence_gateways: Callable[[], float] = lambda: 0.0,
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        Gauge("herald_gateway_connections", "Open WebSocket connections.", registry=self.registry).set_function(
            connections
        )
        Gauge(
            "herald_gateway_subscriptions", "Subscriptions held, summed over connections.", registry=self.registry
        ).set_function(subscriptions)
        Gauge(
            "herald_gateway_nats_subscriptions", "Distinct patterns subscribed to on NATS.", registry=self.registry
        ).set_function(nats_subscriptions)
        Gauge("herald_gateway_tasks", "asyncio tasks alive in the process.", registry=self.registry).set_function(tasks)
        Gauge(
            "herald_gateway_nats_connected", "1 while connected to NATS, else 0.", registry=self.registry
        ).set_function(nats_connected)
        # Updated for every live message: the lock-free kind (see herald_common.loopmetrics).
        self.latency = LoopHistogram(
            "herald_gateway_delivery_latency_seconds",
            "From storage on topics.* (Nats-Time-Stamp) to the frame handed to the sockets; live messages.",
            LATENCY_BUCKETS,
            self.registry,
        )
        self.auth_failures = Counter(
            "herald_gateway_auth_failures",
            "Authentication refused: bad, missing or expired token, or auth timeout.",
            registry=self.registry,
        )
        self.refused_frames = Counter(
            "herald_gateway_refused_frames",
            "Client frames answered with an error frame, by error code.",
            ["reason"],
            registry=self.registry,
        )
        self.deliveries = LoopCounter("herald_gateway_deliveries", "Message frames queued to clients.", self.registry)
        self.disconnects = Counter(
            "herald_gateway_disconnects",
            "Closed WebSocket connections by close code.",
            ["code"],
            registry=self.registry,
        )
        self.dropped = Counter(
            "herald_gateway_dropped_messages", "NATS messages that could not be decoded.", registry=self.registry
        )
        self.backlog_dropped = Counter(
            "herald_gateway_backlog_dropped",
            "Live messages dropped while their pattern's backlog was full (then fetched from the stream).",
            registry=self.registry,
        )

        self.slow_consumers = Counter(
            "herald_gateway_slow_consumers",
            "Connections closed with 4009 for falling behind (frames or bytes queued).",
            registry=self.registry,
        )
        self.gaps_filled = Counter(
            "herald_gateway_gaps_filled",
            "Stored messages fetched to fill gaps in live NATS subscriptions (gap fills and catch-ups).",
            registry=self.registry,
        )
        self.catchups = Counter(
            "herald_gateway_catchups",
            "Pattern subscriptions replayed from the stream after a NATS reconnect.",
            registry=self.registry,
        )
        self.refused = Counter(
            "herald_gateway_refused_connections",
            "Connections refused by a limit, by reason.",
            ["reason"],
            registry=self.registry,
        )

        Gauge(
            "herald_gateway_presence_entries",
            "Presence entries (topic, user, gateway) known, this gateway's own included.",
            registry=self.registry,
        ).set_function(presence_entries)
        Gauge(
            "herald_gateway_presence_gateways", "Other gateways whose presence is known.", registry=self.registry
        ).set_function(presence_gateways)
        self.presence_frames = Counter(
            "herald_gateway_presence_frames", "Join and leave frames queued to sockets.", registry=self.registry
        )
        self.presence_batches = Counter(
            "herald_gateway_presence_batches", "Presence batches sent to the other gateways.", registry=self.registry
        )
        self.presence_snapshots = Counter(
            "herald_gateway_presence_snapshots",
            "Presence snapshots fetched from other gateways.",
            registry=self.registry,
        )
        self.presence_events = Counter(
            "herald_gateway_presence_events", "Joins and leaves stored on HERALD_PRESENCE.", registry=self.registry
        )
        self.presence_events_dropped = Counter(
            "herald_gateway_presence_events_dropped",
            "Joins and leaves dropped before they could be stored (too many waiting).",
            registry=self.registry,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
