"""Prometheus metrics of one app instance (its own registry, so tests can run many)."""

from __future__ import annotations

import logging
import time

from litestar.datastructures import State
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Receive, Scope, Send
from prometheus_client import CollectorRegistry, Gauge, Histogram

from herald_api.asgi import ResponseStatus, route_of
from herald_api.auth import CLAIMS_KEY
from herald_api.errors import status_of
from herald_common.loopmetrics import LoopCounter, LoopCounters, LoopHistogram, LoopHistograms

access_log = logging.getLogger("herald.api.access")


class ApiMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        # Counted and timed on the event loop's thread only (every request's is: the
        # middleware and the producer routes run there), so without prometheus_client's
        # locks (herald_common.loopmetrics); exposed the same way, default buckets.
        self.requests = LoopCounters(
            "herald_api_requests",
            "HTTP requests handled, by method, route template and status.",
            ["method", "route", "status"],
            self.registry,
        )
        self.latency = LoopHistograms(
            "herald_api_request_seconds",
            "HTTP request handling time, by method and route template.",
            ["method", "route"],
            Histogram.DEFAULT_BUCKETS,
            self.registry,
        )
        self.outbox_backlog = Gauge(
            "herald_api_outbox_backlog",
            "Events committed but not yet acknowledged by JetStream.",
            registry=self.registry,
        )
        self.outbox_published = Gauge(
            "herald_api_outbox_published",
            "Events this process has published to JetStream since it started.",
            registry=self.registry,
        )
        self.events_direct = Gauge(
            "herald_api_events_direct",
            "Events this process has stored straight in JetStream (no outbox) since it started.",
            registry=self.registry,
        )
        self.nats_connected = Gauge("herald_api_nats_connected", "1 while connected to NATS.", registry=self.registry)
        # The labelled children by (method, route, status): finding a child through
        # ``labels()`` costs more than counting and timing the request itself.
        self._children: dict[tuple[str, str, int], tuple[LoopCounter, LoopHistogram]] = {}

    def observe(self, method: str, route: str, status: int, elapsed: float) -> None:
        """Count one request and record its duration."""
        key = (method, route, status)
        children = self._children.get(key)
        if children is None:
            children = (self.requests.labels(method, route, str(status)), self.latency.labels(method, route))
            self._children[key] = children
        children[0].inc()
        children[1].observe(elapsed)


def record_request(state: State, scope: Scope, method: str, route: str, status: int, started: float) -> None:
    """Count and time one request; with HERALD_ACCESS_LOG also write its access line."""
    metrics: ApiMetrics = state.metrics
    elapsed = time.perf_counter() - started
    metrics.observe(method, route, status, elapsed)
    if state.settings.access_log and access_log.isEnabledFor(logging.INFO):
        claims = scope.get("state", {}).get(CLAIMS_KEY)
        client = scope.get("client")
        access_log.info(
            "request",
            extra={
                "method": method,
                "route": route,
                "status": status,
                "duration_ms": round(elapsed * 1000, 2),
                "client_ip": client[0] if client else None,
                "user": getattr(claims, "sub", None),
            },
        )


def metrics_middleware(app: ASGIApp) -> ASGIApp:
    """Count and time each request under its route template (never the raw path), and with
    HERALD_ACCESS_LOG write one access line: method, route, status, duration, client, user."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await app(scope, receive, send)
            return
        started = time.perf_counter()
        respond = ResponseStatus(send)
        try:
            await app(scope, receive, respond)
        except BaseException as exc:
            respond.status = status_of(exc)
            raise
        finally:
            method = str(scope.get("method", "-"))
            record_request(scope["litestar_app"].state, scope, method, route_of(scope), respond.status, started)

    return middleware
