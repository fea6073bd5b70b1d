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
``HERALD_MAX_PENDING_BYTES`` bytes with a delivery or a reply gets nothing more and is
closed with 4009 instead.

Control frames are the one thing ``websockets`` answers by itself: it writes a pong for
every ping the moment it parses it, whether or not the client reads. :class:`Socket`
reports how many control frames each read brought, so the gateway counts them against
the frame rate (4008) and checks the pongs against the same byte bound (4009); a client
that keeps flooding once it is being closed is cut off at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import Awaitable, Callable
from typing import Any

from websockets.asyncio.server import ServerConnection
from websockets.frames import Frame, Opcode
from websockets.protocol import Event, State

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


_CONTROL = (Opcode.PING, Opcode.PONG)
#: numbers the sockets of this process, for operators' listings
_serials = itertools.count(1)

#: Seconds a replay or gap fill waits for a socket that takes no bytes at all before the
#: client counts as stalled (4009). A client that keeps reading is never cut for being slow.
STALL_TIMEOUT = 5.0
#: How often a waiting replay looks at the socket again (seconds).
ROOM_POLL = 0.005


class Socket(ServerConnection):
    """websockets' server connection, telling the gateway about the control frames it answered.

    ``on_control(count)`` runs after each read that brought ``count`` ping or pong frames,
    once their pongs are in the transport's buffer. Until the gateway sets it, they are
    only counted away.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.on_control: Callable[[int], None] | None = None
        self._control_frames = 0

    def process_event(self, event: Event) -> None:
        super().process_event(event)
        if isinstance(event, Frame) and event.opcode in _CONTROL:
            self._control_frames += 1

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        count, self._control_frames = self._control_frames, 0
        if count and self.on_control is not None:
            self.on_control(count)


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
        "opened",
        "overflowed",
        "recovering",
        "serial",
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
        #: Unix seconds when the socket was accepted, and its number in this process (for operators)
        self.opened = time.time()
        self.serial = next(_serials)
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

    def push_control(self, item: bytes | Close) -> bool:
        """Send a reply or start closing; False (nothing sent) when a reply would pass the bound.

        A close is never refused.
        """
        if self.closing:
            return True
        if isinstance(item, Close):
            self.closing = True
            self.close_code = int(item.code)
            self.flush()
            self._closer = asyncio.get_running_loop().create_task(self._close(int(item.code), item.reason))
            return True
        return self.deliver(text_frame(item))

    def has_room(self, size: int) -> bool:
        """``size`` more bytes fit under ``max_pending_bytes`` now."""
        return self.pending_bytes + size <= self.max_pending_bytes

    async def room_for(self, size: int, stall: float = STALL_TIMEOUT) -> bool:
        """Wait until ``size`` more bytes fit; False when the socket took nothing for ``stall`` seconds.

        Also False at once when the frame could never fit or the connection is going away.
        What waits in the outbox is written first, so the socket has all there is to take.
        """
        if size > self.max_pending_bytes:
            return False
        self.flush()
        loop = asyncio.get_running_loop()
        last, moved = self.pending_bytes, loop.time()
        while not self.has_room(size):
            if not self.open:
                return False
            # Polled: asyncio's drain wakes only near an empty buffer, which would leave the
            # socket idle between rounds; a few milliseconds keep loopback busy.
            await asyncio.sleep(ROOM_POLL)
            now, pending = loop.time(), self.pending_bytes
            if pending < last:
                last, moved = pending, now
            elif now - moved > stall:
                return False
        return self.open

    @property
    def over_bound(self) -> bool:
        """More than ``max_pending_bytes`` are waiting (pongs ``websockets`` wrote count too)."""
        return self.pending_bytes > self.max_pending_bytes

    def cut(self, code: int) -> None:
        """Abort the socket now, without a closing handshake (the client is flooding it)."""
        self.closing = True
        if self.close_code is None:
            self.close_code = code
        self.drop_pending()
        self.ws.transport.abort()

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
