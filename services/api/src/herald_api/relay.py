"""The outbox relay: publishes committed outbox rows to JetStream, then deletes them.

Rows are domain events (``events.<type>``) and raw publications that waited for NATS
(``topics.<topic>``); each goes to the subject it names.

A row is deleted only after JetStream acknowledged it; a crash in between publishes it
again and JetStream drops the copy by its ``Nats-Msg-Id`` (the event id) within the
dedup window. Api processes sharing one database take turns (:data:`RELAY_LOCK`), each
draining every pending row, its own and the others'; should two still relay the same rows
at once, the ids cover that too, batch or not (see :mod:`herald_common.jsbatch`: a batch
holding a row the other relay already stored is published again one row at a time).

Each stream's rows go out in insertion order as atomic batches of up to 1,000, one batch
in flight: a batch is stored whole or not at all, so a refused row can never be followed
by stored later ones, which would reorder every topic downstream. (Events and raw
publications are two streams with no order between them: they never share a topic.) The
acknowledged rows are deleted together after each read of up to 1,000 rows.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import msgspec
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.errors import NoStreamResponseError
from opentelemetry.trace import Span, StatusCode

from herald_api.natslink import NatsLink
from herald_api.storage.groupcommit import GroupCommit
from herald_api.storage.protocols import OutboxEntry, Storage, Transaction
from herald_common import telemetry
from herald_common.jsbatch import MAX_BATCH, MSG_ID, Outgoing
from herald_common.jsbatch import publish_in_order as publish_messages

log = logging.getLogger(__name__)
_tracer = telemetry.tracer(__name__)
_carrier = msgspec.json.Decoder(dict[str, str])

BATCH = MAX_BATCH
PUBLISH_TIMEOUT = 2.0
MIN_BACKOFF = 0.1
MAX_BACKOFF = 5.0
#: Rows committed by another api process are picked up at least this often (seconds).
IDLE_POLL = 1.0
#: Seconds before trying again while another api process holds the relay lock.
BUSY_RETRY = 0.05
#: Api processes sharing one database relay one at a time: batches of two relays that
#: overlap are refused as duplicates and sent again one row at a time, which is correct
#: but slow (a PostgreSQL advisory lock, or a file lock beside the SQLite file).
RELAY_LOCK = "herald-outbox-relay"


class OutboxRelay:
    """``writes``, when given, commits the deletes together with the requests' writes (one
    fsync for both; a delete lost in a crash only means a duplicate JetStream drops)."""

    def __init__(self, storage: Storage, link: NatsLink, writes: GroupCommit | None = None) -> None:
        self._storage = storage
        self._link = link
        self._writes = writes
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.published = 0
        self._closing = False
        # Until a drain finds the outbox empty it may hold rows, of this process or another.
        self._backlog = True
        self._recorded = 0

    @property
    def backlog(self) -> bool:
        """True while the outbox may hold rows not yet published: a new event must then go
        through the outbox too, or it could be stored ahead of them."""
        return self._backlog

    def wake(self) -> None:
        """Call after committing outbox rows: the relay starts publishing at once."""
        self._recorded += 1
        self._backlog = True
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="outbox-relay")

    async def close(self) -> None:
        self._closing = True
        self._wake.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _sleep(self, seconds: float) -> None:
        # asyncio.timeout rather than wait_for: on 3.11 wait_for can swallow a cancel
        # that races with the event being set, and the relay would never stop.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._wake.wait()

    async def _run(self) -> None:
        backoff = MIN_BACKOFF
        while not self._closing:
            self._wake.clear()
            try:
                async with self._storage.exclusive(RELAY_LOCK) as mine:
                    if mine:
                        await self.drain()
                if not mine:
                    # Another api process is draining the shared outbox, this one's rows
                    # included; try again shortly in case it finished just before them.
                    await self._sleep(BUSY_RETRY)
                    continue
            except Exception as exc:  # NATS away or slow, stream missing, database busy
                log.warning("outbox relay paused: %s", type(exc).__name__ + (f": {exc}" if str(exc) else ""))
                if isinstance(exc, NoStreamResponseError) and self._link.connected:
                    with contextlib.suppress(Exception):
                        await self._link.ensure_streams()
                await self._sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)
                continue
            backoff = MIN_BACKOFF
            await self._sleep(IDLE_POLL)

    async def _remove(self, seqs: list[int]) -> None:
        async def remove(tx: Transaction) -> None:
            await tx.outbox.remove(seqs)

        if self._writes is not None:
            await self._writes.write(remove)
        else:
            async with self._storage.transaction() as tx:
                await remove(tx)

    async def drain(self) -> int:
        """Publish every pending row; returns how many were published.

        Raises the first publish error after deleting the rows acknowledged before it.
        """
        total = 0
        while True:
            recorded = self._recorded
            async with self._storage.transaction(read_only=True) as tx:
                entries = await tx.outbox.pending(BATCH)
            if not entries:
                # Rows committed (and announced) while we read may not have been seen.
                if recorded == self._recorded:
                    self._backlog = False
                return total
            stored, error = await publish_in_order(self._link.client(), self._link.jetstream(), entries)
            if stored:
                await self._remove([entry.seq for entry in stored])
                total += len(stored)
                self.published += len(stored)
            if error is not None:
                raise error


async def publish_in_order(
    nc: Client, js: JetStreamContext, entries: list[OutboxEntry]
) -> tuple[list[OutboxEntry], Exception | None]:
    """Publish ``entries``, each stream's in their order (atomic batches, see
    :func:`herald_common.jsbatch.publish_in_order`).

    Rows hold domain events (``events.*``) and raw topic publications (``topics.*``), two
    streams with no order between them (a batch goes to one stream): each stream's rows go
    out as one run, so rows of both interleaved in the outbox still make long batches.
    Returns the entries JetStream holds now, and the first error that stopped a stream's
    run (None when all are stored); nothing after a failed entry of that stream is stored.
    """
    runs: dict[str, list[tuple[OutboxEntry, Outgoing, Span | None]]] = {}
    for entry in entries:
        headers = {MSG_ID: entry.event_id}
        span = _start_span(entry, headers) if telemetry.tracing_enabled else None
        stream = entry.subject.partition(".")[0]
        runs.setdefault(stream, []).append((entry, Outgoing(entry.subject, entry.payload, headers), span))
    stored: list[OutboxEntry] = []
    first_error: Exception | None = None
    for run in runs.values():
        acked, error = await publish_messages(nc, js, [outgoing for _, outgoing, _ in run], PUBLISH_TIMEOUT)
        for index, (entry, _, span) in enumerate(run):
            _end_span(span, error if index >= acked else None)
            if index < acked:
                stored.append(entry)
        first_error = first_error or error
    return stored, first_error


def _start_span(entry: OutboxEntry, headers: dict[str, str]) -> Span:
    try:
        stored = _carrier.decode(entry.trace_context) if entry.trace_context else None
    except msgspec.DecodeError:
        stored = None
    return telemetry.publish_span(_tracer, entry.subject, entry.event_id, headers, telemetry.extract(stored))


def _end_span(span: Span | None, error: BaseException | None) -> None:
    if span is None:
        return
    if error is not None:
        span.set_status(StatusCode.ERROR, type(error).__name__)
    span.end()
