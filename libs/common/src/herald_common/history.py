"""Reading stored topic messages from the TOPICS stream in batches.

Used by gateways (``since`` replays, gap fills, catch-ups) and by the api's history
endpoint, so both read exactly the same messages with the same offsets. An ephemeral pull
consumer (acknowledgements off, in memory, deleted afterwards) with ``filter_subject`` and
``opt_start_seq`` delivers the stored messages in stream order, many per request.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from herald_common.streams import TOPICS_STREAM

BATCH = 256
FETCH_TIMEOUT = 2.0
#: Seconds the server keeps the consumer if the reader dies before deleting it.
INACTIVE_THRESHOLD = 30.0


@dataclass(frozen=True, slots=True)
class Stored:
    seq: int
    subject: str
    data: bytes


class TooManyError(Exception):
    """The range holds more messages than the caller may take."""


async def _stored_after(js: JetStreamContext, filter_subject: str, after: int, batch: int) -> AsyncIterator[Stored]:
    """Every stored message on ``filter_subject`` with a sequence above ``after``, in order."""
    config = ConsumerConfig(
        deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
        opt_start_seq=after + 1,
        ack_policy=AckPolicy.NONE,
        inactive_threshold=INACTIVE_THRESHOLD,
        mem_storage=True,
        num_replicas=1,
    )
    sub = await js.pull_subscribe(filter_subject, stream=TOPICS_STREAM, config=config)
    try:
        pending = (await sub.consumer_info()).num_pending or 0
        while pending > 0:
            try:
                msgs = await sub.fetch(min(batch, pending), timeout=FETCH_TIMEOUT)
            except (TimeoutError, NatsTimeoutError):
                return  # trimmed between counting and fetching
            if not msgs:
                return
            for msg in msgs:
                meta = msg.metadata
                pending = meta.num_pending
                yield Stored(meta.sequence.stream, msg.subject, msg.data)
    finally:
        with contextlib.suppress(Exception):
            await sub.unsubscribe()
        if config.name:
            with contextlib.suppress(Exception):
                await js.delete_consumer(TOPICS_STREAM, config.name)


async def read_range(js: JetStreamContext, filter_subject: str, after: int, through: int, limit: int) -> list[Stored]:
    """The stored messages on ``filter_subject`` with ``after < seq <= through``, in order.

    Raises :class:`TooManyError` when there are more than ``limit`` of them, and the
    client library's errors when the stream cannot be read.
    """
    if through <= after:
        return []
    out: list[Stored] = []
    async for stored in _stored_after(js, filter_subject, after, min(BATCH, limit + 1)):
        if stored.seq > through:
            break
        out.append(stored)
        if len(out) > limit:
            raise TooManyError(f"more than {limit} messages")
    return out


async def read_page(js: JetStreamContext, filter_subject: str, after: int, limit: int) -> tuple[list[Stored], bool]:
    """Up to ``limit`` stored messages above ``after``, and whether more follow them."""
    out: list[Stored] = []
    async for stored in _stored_after(js, filter_subject, after, min(BATCH, limit + 1)):
        if len(out) == limit:
            return out, True
        out.append(stored)
    return out, False
