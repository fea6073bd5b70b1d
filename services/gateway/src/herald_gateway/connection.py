"""One client's socket side: an outgoing queue drained by a writer task.

Fan-out only appends already-encoded bytes here and never awaits a socket, so one slow
client cannot hold up delivery to the others; a client whose queue passes
``HERALD_MAX_PENDING_FRAMES`` frames or ``HERALD_MAX_PENDING_BYTES`` bytes is closed with
4009 instead.
"""

from __future__ import annotations

import asyncio
from collections import deque

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from herald_gateway.actions import Close
from herald_gateway.recovery import Recovery
from herald_gateway.session import Session


class ClientConnection:
    __slots__ = (
        "_queue",
        "_wakeup",
        "max_pending",
        "max_pending_bytes",
        "overflowed",
        "pending_bytes",
        "recovering",
        "session",
        "timer",
        "ws",
    )

    def __init__(self, ws: ServerConnection, session: Session, max_pending: int, max_pending_bytes: int) -> None:
        self.ws = ws
        self.session = session
        self.max_pending = max_pending
        self.max_pending_bytes = max_pending_bytes
        self.pending_bytes = 0
        #: pattern -> live messages parked while its missed messages are replayed
        self.recovering: dict[str, Recovery] = {}
        self.overflowed = False
        self.timer: asyncio.TimerHandle | None = None
        self._queue: deque[bytes | Close] = deque()
        self._wakeup = asyncio.Event()

    def push(self, frame: bytes) -> bool:
        """Queue a delivery; False when the client is too far behind (nothing queued)."""
        if len(self._queue) >= self.max_pending or self.pending_bytes + len(frame) > self.max_pending_bytes:
            return False
        self.pending_bytes += len(frame)
        self._queue.append(frame)
        self._wakeup.set()
        return True

    def push_control(self, item: bytes | Close) -> None:
        """Queue a reply or a close; never refused, they are few and bounded."""
        if not isinstance(item, Close):
            self.pending_bytes += len(item)
        self._queue.append(item)
        self._wakeup.set()

    def drop_pending(self) -> None:
        self._queue.clear()
        self.pending_bytes = 0

    async def write_loop(self) -> None:
        """Send queued frames in order until a :class:`Close` or the socket closes."""
        try:
            while True:
                while not self._queue:
                    self._wakeup.clear()
                    await self._wakeup.wait()
                item = self._queue.popleft()
                if isinstance(item, Close):
                    await self.ws.close(int(item.code), item.reason)
                    return
                self.pending_bytes -= len(item)
                await self.ws.send(item, text=True)
        except ConnectionClosed:
            return
