"""What the api's ASGI middlewares (metrics, tracing) need to know about a request."""

from __future__ import annotations

from litestar.types import Message, Scope, Send


class ResponseStatus:
    """Wraps an ASGI ``send`` and remembers the status it sent (500 until it sent one)."""

    __slots__ = ("_send", "status")

    def __init__(self, send: Send) -> None:
        self._send = send
        self.status = 500

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
        await self._send(message)


def route_of(scope: Scope) -> str:
    """The route template the request matched (never the raw path), or ``unmatched``."""
    return str(scope.get("path_template") or "unmatched")
