"""Reading stored topic history from the HERALD_TOPICS stream.

A page is read in one batch through an ephemeral, unacknowledged pull consumer filtered
on the topic's subject and starting right after ``since``. Offsets are stream sequences
and the epoch comes from :func:`herald_common.streams.epoch_of`, exactly as a gateway
stamps them on the ``message`` frames it delivers.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from dataclasses import dataclass

import msgspec
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from herald_api.domain.topics.schemas import HistoryItem
from herald_api.natslink import NatsLink
from herald_common import wire
from herald_common.errors import ErrorCode, HeraldError
from herald_common.streams import TOPICS_STREAM, epoch_of
from herald_common.topics import subject_topic, topic_subject

log = logging.getLogger(__name__)

#: How long a fetch of messages known to be stored may take before giving up.
FETCH_TIMEOUT = 3.0
#: The server removes a consumer this request failed to delete after this many seconds.
CONSUMER_TTL = 30.0


@dataclass(frozen=True)
class StoredPage:
    items: list[HistoryItem]
    epoch: str
    #: Last stream sequence read when more messages of the topic follow it, else None.
    next_since: int | None


def history_item(subject: str, seq: int, body: bytes, epoch: str) -> HistoryItem | None:
    """The item for one stored message; None when its body is not a publication (a gateway
    drops such messages too)."""
    try:
        topic = subject_topic(subject)
        publication = wire.decode_publication(body)
    except (ValueError, msgspec.DecodeError):
        return None
    # ``data`` stays raw JSON: it is written out byte for byte, as the gateway does.
    return HistoryItem(topic=topic, data=publication.data, offset=seq, epoch=epoch, event=publication.event)


def _unavailable() -> HeraldError:
    return HeraldError(ErrorCode.UNAVAILABLE, "topic history is unavailable: not connected to NATS")


class TopicHistory:
    def __init__(self, link: NatsLink) -> None:
        self._link = link

    async def read(self, topic: str, since: int, limit: int) -> StoredPage:
        """Up to ``limit`` messages of ``topic`` with an offset above ``since``, oldest first."""
        if not self._link.connected:
            raise _unavailable()
        try:
            return await self._read(topic, since, limit)
        except HeraldError:
            raise
        except Exception as exc:  # disconnects, timeouts, stream missing while being re-declared
            log.warning("reading topic history failed: %s", type(exc).__name__)
            raise _unavailable() from None

    async def _read(self, topic: str, since: int, limit: int) -> StoredPage:
        js = self._link.jetstream()
        info = await js.stream_info(TOPICS_STREAM)
        epoch = epoch_of(info)
        if since >= info.state.last_seq:
            return StoredPage([], epoch, None)
        name = "history-" + uuid.uuid4().hex
        config = ConsumerConfig(
            name=name,
            filter_subject=topic_subject(topic),
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=since + 1,
            ack_policy=AckPolicy.NONE,
            inactive_threshold=CONSUMER_TTL,
            mem_storage=True,
            num_replicas=1,
        )
        consumer = await js.add_consumer(TOPICS_STREAM, config=config)
        try:
            pending = consumer.num_pending or 0
            if pending == 0:
                return StoredPage([], epoch, None)
            sub = await js.pull_subscribe_bind(consumer=name, stream=TOPICS_STREAM)
            try:
                msgs = await sub.fetch(min(limit, pending), timeout=FETCH_TIMEOUT)
            except TimeoutError:
                msgs = []  # trimmed between counting and fetching
            finally:
                await sub.unsubscribe()
        finally:
            with contextlib.suppress(Exception):
                await js.delete_consumer(TOPICS_STREAM, name)
        return _page(msgs, epoch)


def _page(msgs: list[Msg], epoch: str) -> StoredPage:
    items: list[HistoryItem] = []
    last_seq = 0
    remaining = 0
    for msg in msgs:
        meta = msg.metadata
        last_seq = meta.sequence.stream
        remaining = meta.num_pending
        item = history_item(msg.subject, last_seq, msg.data, epoch)
        if item is not None:
            items.append(item)
    return StoredPage(items, epoch, last_seq if msgs and remaining > 0 else None)
