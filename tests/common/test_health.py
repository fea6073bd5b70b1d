from __future__ import annotations

import asyncio

from herald_common.health import HealthServer
from tests.support.procs import free_port


class Fixed:
    def render(self) -> bytes:
        return b"herald_test_total 1.0\n"


def status(response: bytes) -> str:
    return response.split(b"\r\n", 1)[0].decode()


def body(response: bytes) -> bytes:
    return response.split(b"\r\n\r\n", 1)[1]


def test_readyz_follows_readiness_and_says_why() -> None:
    assert status(HealthServer(Fixed(), lambda: True).respond("GET", "/readyz")) == "HTTP/1.1 200 OK"
    assert status(HealthServer(Fixed(), lambda: False).respond("GET", "/readyz")).endswith("503 Service Unavailable")
    why = HealthServer(Fixed(), not_ready=lambda: "events stream not reachable").respond("GET", "/readyz")
    assert status(why).endswith("503 Service Unavailable")
    assert body(why) == b"events stream not reachable\n"
    assert status(HealthServer(Fixed(), not_ready=lambda: "").respond("GET", "/readyz")) == "HTTP/1.1 200 OK"


def test_healthz_metrics_and_errors() -> None:
    server = HealthServer(Fixed(), lambda: False)
    assert status(server.respond("GET", "/healthz")) == "HTTP/1.1 200 OK"
    metrics = server.respond("GET", "/metrics?x=1")
    assert b"Content-Type: text/plain; version=" in metrics
    assert body(metrics) == b"herald_test_total 1.0\n"
    assert status(server.respond("GET", "/nope")) == "HTTP/1.1 404 Not Found"
    assert status(server.respond("POST", "/healthz")) == "HTTP/1.1 405 Method Not Allowed"


async def test_serves_over_tcp() -> None:
    server = HealthServer(Fixed(), lambda: True)
    port = free_port()
    await server.start("127.0.0.1", port)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        response = await reader.read()
        writer.close()
    finally:
        await server.close()
    assert status(response) == "HTTP/1.1 200 OK"
    assert body(response) == b"herald_test_total 1.0\n"
