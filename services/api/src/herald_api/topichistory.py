"""Reading stored topic history from the HERALD_TOPICS stream.

A page is read with :func:`herald_common.history.read_page`, the reader the gateways use
for replays, filtered on the topic's subject and starting right after ``since``. Offsets are stream sequences
and the epoch comes from :func:`herald_common.streams.epoch_of`, exactly as a gateway
stamps them on the ``message`` frames it delivers.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import msgspec

from herald_api.domain.topics.schemas import HistoryItem
from herald_api.natslink import NatsLink
from herald_common import wire
from herald_common.errors import ErrorCode, HeraldError
from herald_common.history import read_page
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
    drops such messages too).

    Whatever a stored body holds, it costs only its own item, never the page: the stream
    may hold messages accepted under older limits (nested deeper than a decoder can follow
    here, for one) or written to the subject by anyone with NATS access.
    """
    try:
        topic = subject_topic(subject)
        publication = wire.decode_publication(body)
    except (ValueError, msgspec.MsgspecError, RecursionError) as exc:
        log.warning("skipping undecodable stored message %d on %s: %s", seq, subject, type(exc).__name__)
        return None
    # ``data`` stays raw JSON: it is written out byte for byte, as the gateway does.
    return HistoryItem(
        topic=topic,
        data=publication.data,
        offset=seq,
        epoch=epoch,
        event=publication.event,
        publisher=publication.publisher,
    )


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
        stored, more = await read_page(js, topic_subject(topic), since, limit)
        items = [item for s in stored if (item := history_item(s.subject, s.seq, s.data, epoch)) is not None]
        return StoredPage(items, epoch, stored[-1].seq if stored and more else None)
