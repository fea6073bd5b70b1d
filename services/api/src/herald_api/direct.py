"""Raw publications go straight to JetStream, many requests per write.

A ``POST /api/publish`` answered 202 must be durable. JetStream (every write fsynced, as
``herald up`` and the deployments run it) is as durable a place for it as the SQL outbox,
and storing it there directly spares the outbox insert, the relay's read and its delete.
Messages of concurrent requests are gathered while a write is in flight and go out
together (:func:`herald_common.jsbatch.publish_in_order`: an atomic batch, or a few plain
publishes). A request's messages are stored in order, in one write, and one write is in
flight at a time while the rest fits the next one: nats-server commits a stream's atomic
batches one after another, about 5 ms each whether they hold 30 messages or 250, so
writes in flight together would only split the same traffic into smaller batches. One at
a time, each write carries every request that arrived during the previous one. Only when a
full batch (:data:`~herald_common.jsbatch.MAX_BATCH` messages) already waits does a second
write start, so that nats-server stages it while it commits the first (batch producers at
tens of thousands of messages a second; a write of 1,000 takes 40–50 ms here). Requests
answered one after another are stored in that order; requests in flight together have no
order between them (none of them was sent after another's 202).

The outbox stays the fallback: while NATS is away, when a write fails, or while the outbox
still holds rows (a later message must not overtake an earlier one waiting there),
:meth:`DirectPublisher.available` is false or :meth:`DirectPublisher.publish` raises, and
the caller records the messages in the outbox instead. A message that was stored after all
(an answer lost on the way) is dropped as a duplicate when the relay publishes it.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from opentelemetry.trace import Span, StatusCode

from herald_api.natslink import NatsLink
from herald_api.relay import PUBLISH_TIMEOUT, OutboxRelay
from herald_common import telemetry
from herald_common.jsbatch import MAX_BATCH, MSG_ID, Outgoing, publish_in_order

log = logging.getLogger(__name__)
_tracer = telemetry.tracer(__name__)

#: writes in flight at most: a second one starts only while a full batch waits
MAX_WRITES = 2


@dataclass(slots=True)
class _Request:
    messages: list[Outgoing]
    done: asyncio.Future[None]


class DirectPublisher:
    """Publishes the events of concurrent requests to JetStream, one write in flight (two while a full batch waits)."""

    def __init__(self, link: NatsLink, relay: OutboxRelay, timeout: float = PUBLISH_TIMEOUT) -> None:
        self._link = link
        self._relay = relay
        self._timeout = timeout
        self._queue: list[_Request] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        #: Events this process stored in JetStream without the outbox.
        self.published = 0
        #: The most writes that were in flight at once.
        self.peak_writes = 0
        #: the writers, each with one write in flight (see :meth:`_lane`)
        self._lanes: set[asyncio.Task[None]] = set()
        #: messages in the queued requests
        self._queued = 0

    def available(self) -> bool:
        """True when an event may go straight to JetStream (else: record it in the outbox)."""
        return self._task is not None and not self._closing and self._link.ready and not self._relay.backlog

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="direct-publisher")

    async def close(self) -> None:
        """Finish the write in flight; requests still queued fail (their callers fall back)."""
        task, self._task = self._task, None
        if task is not None:
            self._closing = True
            self._wake.set()
            await task
        for request in self._queue:
            if not request.done.done():
                request.done.set_exception(ConnectionError("the api is stopping"))
        self._queue.clear()
        self._queued = 0

    async def publish(self, messages: list[Outgoing]) -> None:
        """Store ``messages`` (one stream, each with its ``Nats-Msg-Id``) in JetStream, in
        order; returns once they are stored.

        Raises when they may not be (NATS away or slow, JetStream refusing): the caller then
        records them in the outbox. At most :data:`~herald_common.jsbatch.MAX_BATCH` messages.
        """
        if len(messages) > MAX_BATCH:
            raise ValueError(f"at most {MAX_BATCH} messages at once")
        spans: list[Span] = []
        if telemetry.tracing_enabled:
            for message in messages:
                spans.append(telemetry.publish_span(_tracer, message.subject, message.headers[MSG_ID], message.headers))
        request = _Request(messages, asyncio.get_running_loop().create_future())
        self._queue.append(request)
        self._queued += len(messages)
        if self._may_write():  # else the write in flight wakes the writer when it ends
            self._wake.set()
        try:
            await request.done
        except BaseException as exc:
            _end_spans(spans, exc)
            raise
        _end_spans(spans, None)

    def _take(self) -> list[_Request]:
        """The queued requests that fit one batch (always at least the first)."""
        size = 0
        count = 0
        for request in self._queue:
            if count and size + len(request.messages) > MAX_BATCH:
                break
            size += len(request.messages)
            count += 1
        taken = self._queue[:count]
        del self._queue[:count]
        self._queued -= size
        return taken

    async def _run(self) -> None:
        lanes = self._lanes

        def ended(task: asyncio.Task[None]) -> None:
            lanes.discard(task)
            self._wake.set()

        while not self._closing:
            await self._wake.wait()
            self._wake.clear()
            while self._queue and not self._closing and self._may_write():
                task = asyncio.create_task(self._lane())
                lanes.add(task)
                task.add_done_callback(ended)
                self.peak_writes = max(self.peak_writes, len(lanes))
        if lanes:
            await asyncio.gather(*lanes, return_exceptions=True)

    def _may_write(self) -> bool:
        """No write in flight, or a second one while a full batch waits."""
        writes = len(self._lanes)
        return not writes or (writes < MAX_WRITES and self._queued >= MAX_BATCH)

    async def _lane(self) -> None:
        """Write what waits, one write after another, as long as something waits.

        The next write goes out as soon as the last is acknowledged, before its requests are
        answered, so nats-server commits it while this process writes the answers. A second
        lane stops once what waits would fit the other lane's next write.
        """
        while self._queue and not self._closing:
            requests = [r for r in self._take() if not r.done.done()]
            if requests:
                await self._write(requests)
            if len(self._lanes) > 1 and self._queued < MAX_BATCH:
                return

    async def _write(self, requests: list[_Request]) -> None:
        messages = [message for request in requests for message in request.messages]
        try:
            acked, error = await publish_in_order(self._link.client(), self._link.jetstream(), messages, self._timeout)
        except Exception as exc:  # not connected yet, or closed under us
            acked, error = 0, exc
        stored = 0
        for request in requests:
            stored += len(request.messages)
            if request.done.done():
                continue
            if stored <= acked:
                request.done.set_result(None)
            else:
                request.done.set_exception(error or ConnectionError("not stored"))
        self.published += acked
        if error is not None:
            log.info("direct publish failed, events go through the outbox: %s", type(error).__name__)


def _end_spans(spans: list[Span], error: BaseException | None) -> None:
    for span in spans:
        if error is not None:
            span.set_status(StatusCode.ERROR, type(error).__name__)
        span.end()
