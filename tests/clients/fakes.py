"""A tiny WebSocket server that plays a scripted gateway, for close codes the real one
cannot be made to send yet (4003 comes with the operator endpoint) or for a gateway
that goes silent."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from websockets.asyncio.server import ServerConnection, serve

Script = Callable[[ServerConnection, int], Awaitable[None]]


@dataclass
class FakeGateway:
    port: int = 0
    #: The token of each connection's first ``auth``, in order.
    tokens: list[str] = field(default_factory=list)
    frames: list[dict[str, object]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    @property
    def connections(self) -> int:
        return len(self.tokens)


async def accept_auth(ws: ServerConnection, gateway: FakeGateway) -> None:
    first = json.loads(await ws.recv())
    assert first["type"] == "auth", first
    gateway.tokens.append(first["token"])
    await ws.send(json.dumps({"type": "auth_success", "userId": "alice"}))


@asynccontextmanager
async def fake_gateway(
    script: Callable[[ServerConnection, int, FakeGateway], Awaitable[None]],
) -> AsyncIterator[FakeGateway]:
    """Serve on a free loopback port; ``script(ws, n, gateway)`` runs connection number ``n`` (from 0)."""
    gateway = FakeGateway()
    count = 0

    async def handler(ws: ServerConnection) -> None:
        nonlocal count
        n = count
        count += 1
        await script(ws, n, gateway)

    async with serve(handler, "127.0.0.1", 0, ping_interval=None) as server:
        gateway.port = next(iter(server.sockets)).getsockname()[1]
        yield gateway
        server.close()


async def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)
