from __future__ import annotations

from herald_common.health import HealthServer
from herald_gateway.metrics import Metrics


def server(ready: bool) -> HealthServer:
    metrics = Metrics(connections=lambda: 3, subscriptions=lambda: 5, nats_subscriptions=lambda: 2, tasks=lambda: 7)
    metrics.disconnects.labels(code="4001").inc()
    return HealthServer(metrics, lambda: ready)


def status(response: bytes) -> str:
    return response.split(b"\r\n", 1)[0].decode()


def test_readyz_follows_readiness() -> None:
    assert status(server(True).respond("GET", "/readyz")) == "HTTP/1.1 200 OK"
    assert status(server(False).respond("GET", "/readyz")) == "HTTP/1.1 503 Service Unavailable"
    assert status(server(False).respond("GET", "/healthz")) == "HTTP/1.1 200 OK"


def test_metrics_text() -> None:
    body = server(True).respond("GET", "/metrics?x=1").split(b"\r\n\r\n", 1)[1].decode()
    assert "herald_gateway_connections 3.0" in body
    assert "herald_gateway_subscriptions 5.0" in body
    assert "herald_gateway_nats_subscriptions 2.0" in body
    assert "herald_gateway_tasks 7.0" in body
    assert 'herald_gateway_disconnects_total{code="4001"} 1.0' in body


def test_unknown_path_and_method() -> None:
    assert status(server(True).respond("GET", "/nope")) == "HTTP/1.1 404 Not Found"
    assert status(server(True).respond("POST", "/healthz")) == "HTTP/1.1 405 Method Not Allowed"
