"""Frames to the local connections, within their byte bounds.

:class:`Delivery` is the gateway's side of :class:`~herald_gateway.holders.Holders`: a
live message becomes one ``message`` frame, encoded once and shared by every recipient
(:func:`~herald_gateway.fanout.fan_out`); stored messages (gap fills, catch-ups) wait
for the holders that have no room; a replay goes at one socket's pace. A connection
that cannot keep up is handed to ``overflow``, which closes it with 4009.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import msgspec

from herald_common import telemetry, wire
from herald_common.topics import subject_topic
from herald_gateway import fanout
from herald_gateway.connection import ClientConnection
from herald_gateway.hub import Interest
from herald_gateway.metrics import Metrics
from herald_gateway.observe import FanOutTrace, stored_at

log = logging.getLogger("herald.gateway")


class Delivery:
    """Delivers to the members of ``interest``; ``overflow(conn)`` closes one that fell behind."""

    def __init__(
        self, interest: Interest[ClientConnection], metrics: Metrics, overflow: Callable[[ClientConnection], None]
    ) -> None:
        self._interest = interest
        self._metrics = metrics
        self._overflow = overflow

    def holds(self, pattern: str) -> bool:
        return pattern in self._interest

    def fan_out(self, pattern: str, subject: str, headers: dict[str, str] | None, data: bytes, epoch: str) -> int:
        """Deliver one live message to the local holders of ``pattern``; returns how many got it."""
        members = self._interest.members(pattern)
        if not members:
            return 0
        try:
            topic = subject_topic(subject)
            offset = int((headers or {})["Nats-Sequence"])
            publication = wire.decode_publication(data)
        except (KeyError, ValueError, msgspec.DecodeError):
            self._metrics.dropped.inc()
            log.warning("dropped a live message that is not a valid publication")
            return 0
        payload = wire.encode(
            wire.Message(
                topic=topic,
                data=publication.data,
                offset=offset,
                epoch=epoch,
                event=publication.event,
                publisher=publication.publisher,
            )
        )
        # Tracing off: one flag check, no header read, no span.
        span = FanOutTrace.start(pattern, subject, offset, headers) if telemetry.tracing_enabled else None
        delivered, slow = fanout.fan_out(members, pattern, topic, offset, payload)
        if span is not None:
            span.end(delivered)
        for conn in slow:
            self._overflow(conn)
        self._metrics.deliveries.inc(delivered)
        if delivered and headers:
            stored = stored_at(headers)
            if stored is not None:
                self._metrics.latency.observe(max(0.0, time.time() - stored))
        return delivered

    async def make_room(self, pattern: str, size: int) -> None:
        """Wait for the live holders of ``pattern`` without room for ``size`` bytes; overflow the stalled."""
        members = self._interest.members(pattern)
        short = [c for c in members if pattern not in c.recovering and c.open and not c.has_room(size)]
        if not short:
            return
        roomy = await asyncio.gather(*(c.room_for(size) for c in short))
        for conn, ok in zip(short, roomy, strict=True):
            if not ok and conn.open:
                self._overflow(conn)

    def drop(self, pattern: str, topic: str | None) -> None:
        for conn in list(self._interest.members(pattern)):
            if topic is None or conn.session.wants(pattern, topic):
                self._overflow(conn)

    async def paced(self, conn: ClientConnection, payloads: list[bytes], going: Callable[[], bool]) -> int:
        """Send ``payloads`` at the socket's pace (while ``going()``); how many were sent.

        A payload that does not fit waits for the client to read (:meth:`ClientConnection.room_for`)
        instead of overflowing the byte bound, so a large replay reaches a client that keeps
        reading; one that stalls is closed with 4009.
        """
        for sent, payload in enumerate(payloads):
            if not going():
                return sent
            frame = fanout.text_frame(payload)
            if conn.deliver(frame):
                continue
            if not await conn.room_for(len(frame)) or not going() or not conn.deliver(frame):
                if going():
                    self._overflow(conn)
                return sent
        return len(payloads)
