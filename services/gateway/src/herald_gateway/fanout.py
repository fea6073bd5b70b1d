"""Encode once, fan out: one message's WebSocket frame written to every recipient.

Server frames are never masked and the gateway runs without compression, so the bytes
of a ``message`` frame (WebSocket header + JSON payload) are the same for every
recipient. :func:`text_frame` builds them once per message and :func:`fan_out` hands
that one ``bytes`` object to each recipient; the per-recipient work is a filter check,
a buffer-size check and a list append.

Writes are coalesced per event-loop iteration (:class:`Outbox`): a connection's frames
from one iteration reach its transport in one ``write`` at the end of it, so when
messages arrive faster than sockets can be written, several share a system call
instead of each paying one. A lone frame is written as the very object fan-out built.

Backpressure is the transport's own write buffer plus what waits in the outbox: a
recipient that would pass its byte bound gets nothing and is returned as slow, for the
caller to close with 4009.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections.abc import Callable, Iterable
from typing import Protocol, TypeVar

from herald_gateway.recovery import Recovery, RecoveryState

log = logging.getLogger("herald.gateway")

_OP_TEXT_FIN = 0x81
_HEADER_16 = struct.Struct("!BBH")
_HEADER_64 = struct.Struct("!BBQ")


def text_frame(payload: bytes) -> bytes:
    """A complete final, unmasked, uncompressed WebSocket text frame carrying ``payload``."""
    size = len(payload)
    if size < 126:
        return bytes((_OP_TEXT_FIN, size)) + payload
    if size < 65536:
        return _HEADER_16.pack(_OP_TEXT_FIN, 126, size) + payload
    return _HEADER_64.pack(_OP_TEXT_FIN, 127, size) + payload


class Flushable(Protocol):
    def flush(self) -> None: ...


class Outbox:
    """Connections with frames waiting; all flushed once at the end of the loop iteration."""

    __slots__ = ("_dirty", "_schedule", "_scheduled")

    def __init__(self, schedule: Callable[[Callable[[], None]], object] | None = None) -> None:
        #: how to run :meth:`flush` soon; the running loop's ``call_soon`` by default
        self._schedule = schedule
        self._dirty: list[Flushable] = []
        self._scheduled = False

    def mark(self, conn: Flushable) -> None:
        """``conn`` has frames waiting (call once, when its first one arrives)."""
        self._dirty.append(conn)
        if not self._scheduled:
            self._scheduled = True
            schedule = self._schedule or asyncio.get_running_loop().call_soon
            schedule(self.flush)

    def flush(self) -> None:
        self._scheduled = False
        dirty, self._dirty = self._dirty, []
        for conn in dirty:
            try:
                conn.flush()
            except Exception:  # one broken socket must not cost the others their frames
                log.warning("writing to a client failed", exc_info=True)


class Transport(Protocol):
    """The part of :class:`asyncio.Transport` that fan-out uses."""

    def write(self, data: bytes) -> None: ...

    def get_write_buffer_size(self) -> int: ...

    def is_closing(self) -> bool: ...


class Filter(Protocol):
    def wants(self, pattern: str, topic: str) -> bool: ...


class Recipient(Protocol):
    """What :func:`fan_out` needs from a connection."""

    @property
    def session(self) -> Filter: ...

    @property
    def recovering(self) -> dict[str, Recovery]: ...

    def deliver(self, frame: bytes) -> bool: ...


R = TypeVar("R", bound=Recipient)


def fan_out(recipients: Iterable[R], pattern: str, topic: str, offset: int, payload: bytes) -> tuple[int, list[R]]:
    """Write one live message to every recipient of ``pattern`` that wants ``topic``.

    Returns how many were written to, and the recipients over their bound (nothing was
    written to them).

    ``payload`` is the encoded ``message`` frame; its WebSocket frame is built once.
    A recipient still replaying missed messages for ``pattern`` gets ``payload`` parked
    instead (and is slow if its parking space is full).
    """
    frame = text_frame(payload)
    delivered = 0
    slow: list[R] = []
    for conn in recipients:
        if not conn.session.wants(pattern, topic):
            continue
        recovering = conn.recovering
        if recovering:
            recovery = recovering.get(pattern)
            if recovery is not None:
                if recovery.state is RecoveryState.RECOVERING and not recovery.park(offset, payload):
                    slow.append(conn)
                continue
        if conn.deliver(frame):
            delivered += 1
        else:
            slow.append(conn)
    return delivered, slow
