"""A fake socket for the gateway's pure delivery tests: records what is written."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, cast

from websockets.protocol import State

from herald_gateway.connection import ClientConnection
from herald_gateway.fanout import Outbox
from herald_gateway.session import Session


@dataclass
class FakeTransport:
    #: bytes the kernel has not taken yet (what ``get_write_buffer_size`` reports)
    buffered: int = 0
    written: list[bytes] = field(default_factory=list)
    aborted: asyncio.Event = field(default_factory=asyncio.Event)

    def write(self, data: bytes) -> None:
        self.written.append(data)
        self.buffered += len(data)

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def is_closing(self) -> bool:
        return self.aborted.is_set()

    def abort(self) -> None:
        self.aborted.set()


@dataclass
class FakeProtocol:
    state: State = State.OPEN


@dataclass
class FakeWebSocket:
    transport: FakeTransport = field(default_factory=FakeTransport)
    protocol: FakeProtocol = field(default_factory=FakeProtocol)
    close_timeout: float = 0.01
    closed_with: list[tuple[int, str]] = field(default_factory=list)
    hang_on_close: bool = False

    async def close(self, code: int = 1000, reason: str = "") -> None:
        self.closed_with.append((code, reason))
        self.protocol.state = State.CLOSING
        if self.hang_on_close:  # a client that stopped reading: only an abort ends it
            await self.transport.aborted.wait()


def manual_outbox() -> Outbox:
    """An outbox that writes only when the test calls its ``flush``."""
    return Outbox(schedule=lambda flush: None)


def fake_connection(
    session: Session, max_pending_bytes: int = 1 << 20, outbox: Outbox | None = None
) -> tuple[ClientConnection, FakeWebSocket]:
    ws = FakeWebSocket()
    return ClientConnection(cast(Any, ws), session, max_pending_bytes, outbox or manual_outbox()), ws


def decoded(written: list[bytes]) -> list[bytes]:
    """The payloads of a stream of short text frames."""
    stream, out = b"".join(written), []
    while stream:
        assert stream[0] == 0x81 and stream[1] < 126
        out.append(stream[2 : 2 + stream[1]])
        stream = stream[2 + stream[1] :]
    return out
