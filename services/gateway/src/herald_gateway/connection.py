"""One client's socket side: frames written straight to its transport.

Every frame the gateway sends on its own (deliveries, replies) is appended, in order,
to the connection's outgoing list and written whole with one ``transport.write`` at the
end of the event-loop iteration (:class:`~herald_gateway.fanout.Outbox`), never
awaiting the socket, so one slow client cannot hold up delivery to the others.
``websockets`` keeps the handshake, reading, pings, pongs and the closing handshake.

Writing beside ``websockets`` is safe because its asyncio implementation also writes
every frame whole and synchronously (``send_context`` serialises a frame into the
protocol and ``send_data`` hands it to the transport with no ``await`` in between), the
gateway never sends fragmented messages, and nothing is written once the protocol has
left ``OPEN`` (after a close frame nothing else may follow; the gateway's own closes
flush what is waiting first).

A client whose transport buffer plus waiting frames would pass
``HERALD_MAX_PENDING_BYTES`` bytes with a delivery gets nothing more and is closed with
4009 instead.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from typing import Any

from websockets.asyncio.server import ServerConnection
from websockets.protocol import State

from herald_gateway.actions import Close
from herald_gateway.fanout import Outbox, Transport, text_frame
from herald_gateway.recovery import Recovery
from herald_gateway.session import Session


def raw_fd(transport: object) -> int:
    """The descriptor of a plain TCP transport's socket, or -1 (TLS, or none to be had)."""
    get = getattr(transport, "get_extra_info", None)
    if get is None or get("sslcontext") is not None or get("ssl_object") is not None:
        return -1
    sock = get("socket")
    try:
        fd = int(sock.fileno()) if sock is not None else -1
    except (OSError, ValueError, AttributeError):
        return -1
    return fd


class ClientConnection:
    __slots__ = (
        "__weakref__",  # the keepalive schedule holds connections weakly
        "_closer",
        "_fd",
        "_out",
        "_out_bytes",
        "_outbox",
        "_protocol",
        "client_ip",
        "close_code",
        "closing",
        "max_pending_bytes",
        "overflowed",
        "recovering",
        "session",
        "timer",
        "transport",
        "ws",
    )

    def __init__(self, ws: ServerConnection, session: Session, max_pending_bytes: int, outbox: Outbox) -> None:
        self.ws = ws
        self.session = session
        #: the address the per-IP limits count (set by the shell), for log lines
        self.client_ip = ""
        self.max_pending_bytes = max_pending_bytes
        self.transport: Transport = ws.transport
        self._protocol: Any = ws.protocol
        #: pattern -> live messages parked while its missed messages are replayed
        self.recovering: dict[str, Recovery] = {}
        self.overflowed = False
        #: a :class:`Close` was asked for; nothing more is written
        self.closing = False
        #: the code of that close (what the client is told, even if the socket had to be aborted)
        self.close_code: int | None = None
        self.timer: asyncio.TimerHandle | None = None
        self._closer: asyncio.Task[None] | None = None
        self._outbox = outbox
        #: frames waiting for the outbox's flush, and their size
        self._out: list[bytes] = []
        self._out_bytes = 0
        #: the socket's descriptor for raw writes (-1: always write through the transport)
        self._fd = raw_fd(self.transport)

    @property
    def pending_bytes(self) -> int:
        """Bytes sent to this client that its socket has not taken yet."""
        return self.transport.get_write_buffer_size() + self._out_bytes

    def deliver(self, frame: bytes) -> bool:
        """Send a complete WebSocket frame; False when the client is too far behind.

        Nothing is sent when it returns False. Once the connection is closing the
        frame is dropped (True: the client is not slow, it is leaving).
        """
        if self.closing:
            return True
        size = self._out_bytes + len(frame)
        if self.transport.get_write_buffer_size() + size > self.max_pending_bytes:
            return False
        out = self._out
        if not out:
            self._outbox.mark(self)
        out.append(frame)
        self._out_bytes = size
        return True

    def push(self, payload: bytes) -> bool:
        """Send one encoded delivery (a JSON text frame); False when too far behind."""
        return self.deliver(text_frame(payload))

    def push_control(self, item: bytes | Close) -> None:
        """Send a reply or start closing; never refused, replies are few and bounded."""
        if self.closing:
            return
        if isinstance(item, Close):
            self.closing = True
            self.close_code = int(item.code)
            self.flush()
            self._closer = asyncio.get_running_loop().create_task(self._close(int(item.code), item.reason))
            return
        frame = text_frame(item)
        if not self._out:
            self._outbox.mark(self)
        self._out.append(frame)
        self._out_bytes += len(frame)

    def drop_pending(self) -> None:
        """Forget the frames not written yet (a slow consumer is closed without them)."""
        self._out = []
        self._out_bytes = 0

    def flush(self) -> None:
        """Write the waiting frames in one go (unless the connection is going away)."""
        out = self._out
        if not out:
            return
        self._out = []
        self._out_bytes = 0
        transport = self.transport
        if self._protocol.state is State.OPEN and not transport.is_closing():
            transport.write(out[0] if len(out) == 1 else b"".join(out))

    def take_raw(self) -> tuple[int, bytes] | None:
        """The waiting frames for a raw write to the socket, when that keeps the byte order.

        Only when the transport holds nothing: anything it buffers must go out first, so
        then the frames are written through it here and ``None`` is returned.
        """
        out = self._out
        if not out:
            return None
        transport = self.transport
        if self._fd < 0 or transport.get_write_buffer_size() or self._protocol.state is not State.OPEN:
            self.flush()
            return None
        if transport.is_closing():
            self._out = []
            self._out_bytes = 0
            return None
        self._out = []
        self._out_bytes = 0
        return self._fd, out[0] if len(out) == 1 else b"".join(out)

    def write_rest(self, data: bytes, sent: int) -> None:
        """What a raw write left (``sent`` bytes went, -1 if it failed) goes through the transport."""
        if sent < 0:
            # The same write through the transport fails the same way, and the transport
            # then closes the connection as for any failed write.
            self.transport.write(data)
        elif sent < len(data):
            self.transport.write(data[sent:])

    @property
    def open(self) -> bool:
        """The WebSocket is open and the gateway is not closing it."""
        return not self.closing and self._protocol.state is State.OPEN

    async def ping(self) -> Awaitable[float]:
        """Send a keepalive ping; the result completes with the pong (see keepalive.py)."""
        return await self.ws.ping()

    async def fail(self, code: int, reason: str) -> None:
        """End an unresponsive connection as ``websockets``' own keepalive does: fail it."""
        self.closing = True
        self.close_code = code
        async with self.ws.send_context():
            self._protocol.fail(code, reason)

    async def _close(self, code: int, reason: str) -> None:
        # ``close`` waits for the write buffer to drain before its own timeout starts, so
        # a client that stopped reading would hold it forever: abort the socket instead.
        timeout = self.ws.close_timeout
        grace = 2.0 * timeout if timeout else 10.0
        abort = asyncio.get_running_loop().call_later(grace, self.ws.transport.abort)
        try:
            await self.ws.close(code, reason)
        finally:
            abort.cancel()

    async def closed(self) -> None:
        """Wait for a close this connection started (if any) to finish."""
        if self._closer is not None:
            with contextlib.suppress(Exception):
                await self._closer
