"""A minimal HTTP/1.1 listener for ``/healthz``, ``/readyz`` and ``/metrics``.

It answers one request per connection and closes it; that is all probes and Prometheus
need, and it keeps a web framework out of the services that have no HTTP API (gateway,
bridge).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Protocol

from prometheus_client.exposition import CONTENT_TYPE_LATEST

_READ_TIMEOUT = 5.0
_MAX_HEAD = 8192


class Renders(Protocol):
    """Anything that renders Prometheus metrics in the text exposition format."""

    def render(self) -> bytes: ...


def _response(status: str, body: bytes, content_type: str = "text/plain; charset=utf-8") -> bytes:
    head = (
        f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


class HealthServer:
    """``/healthz`` always 200; ``/readyz`` 200 or 503 with the reason; ``/metrics`` from ``metrics``.

    ``not_ready`` returns why the service is not ready (``""`` when it is); ``ready`` is the
    simpler form for services with a single condition.
    """

    def __init__(
        self,
        metrics: Renders,
        ready: Callable[[], bool] | None = None,
        *,
        not_ready: Callable[[], str] | None = None,
    ) -> None:
        self._metrics = metrics
        self._ready = ready
        self._not_ready = not_ready
        self._server: asyncio.Server | None = None

    def not_ready(self) -> str:
        """Why the service is not ready, or ``""`` when it is."""
        if self._not_ready is not None:
            return self._not_ready()
        if self._ready is not None and not self._ready():
            return "not ready"
        return ""

    async def start(self, host: str, port: int) -> None:
        self._server = await asyncio.start_server(self._handle, host, port)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def respond(self, method: str, path: str) -> bytes:
        """The full HTTP response for one request (pure, for tests)."""
        if method not in ("GET", "HEAD"):
            return _response("405 Method Not Allowed", b"method not allowed\n")
        path = path.split("?", 1)[0]
        if path == "/healthz":
            return _response("200 OK", b"ok\n")
        if path == "/readyz":
            reason = self.not_ready()
            if not reason:
                return _response("200 OK", b"ready\n")
            return _response("503 Service Unavailable", reason.encode() + b"\n")
        if path == "/metrics":
            return _response("200 OK", self._metrics.render(), CONTENT_TYPE_LATEST)
        return _response("404 Not Found", b"not found\n")

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), _READ_TIMEOUT)
            if len(head) > _MAX_HEAD:
                return
            parts = head.split(b"\r\n", 1)[0].decode("latin-1").split()
            if len(parts) != 3:
                writer.write(_response("400 Bad Request", b"bad request\n"))
            else:
                writer.write(self.respond(parts[0], parts[1]))
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
