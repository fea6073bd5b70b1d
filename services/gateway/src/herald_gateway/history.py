"""Reading a range of the TOPICS stream in batches, for gap fills and catch-ups.

An ephemeral pull consumer (acknowledgements off, in memory, deleted afterwards) with
``filter_subject`` and ``opt_start_seq`` delivers the stored messages in stream order,
many per request, instead of one "next message" request each.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from herald_common.streams import TOPICS_STREAM

BATCH = 256
FETCH_TIMEOUT = 2.0
#: Seconds the server keeps the consumer if the gateway dies before deleting it.
INACTIVE_THRESHOLD = 30.0


@dataclass(frozen=True, slots=True)
class Stored:
    seq: int
    subject: str
    data: bytes


class TooManyError(Exception):
    """The range holds more messages than the caller may take."""


async def read_range(js: JetStreamContext, filter_subject: str, after: int, through: int, limit: int) -> list[Stored]:
    """The stored messages on ``filter_subject`` with ``after < seq <= through``, in order.

    Raises :class:`TooManyError` when there are more than ``limit`` of them, and the
    client library's errors when the stream cannot be read.
    """
    if through <= after:
        return []
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
        info = await sub.consumer_info()
        out: list[Stored] = []
        pending = info.num_pending or 0
        while pending > 0:
            try:
                msgs = await sub.fetch(min(BATCH, limit + 1 - len(out)), timeout=FETCH_TIMEOUT)
            except (TimeoutError, NatsTimeoutError):
                break
            for msg in msgs:
                meta = msg.metadata
                seq = meta.sequence.stream
                if seq > through:
                    return out
                out.append(Stored(seq, msg.subject, msg.data))
                if len(out) > limit:
                    raise TooManyError(f"more than {limit} messages")
                pending = meta.num_pending
            if not msgs:
                break
        return out
    finally:
        with contextlib.suppress(Exception):
            await sub.unsubscribe()
        if config.name:
            with contextlib.suppress(Exception):
                await js.delete_consumer(TOPICS_STREAM, config.name)
