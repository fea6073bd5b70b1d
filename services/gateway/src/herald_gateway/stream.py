"""The TOPICS stream as the gateway reads it: its epoch, stored ranges, and replay for ``since``.

Replay (:meth:`TopicsStream.read_missed`) reads the stream in batches
(:mod:`herald_common.history`), up to the stream's last sequence when the replay
began. A gap of more than ``HERALD_MAX_REPLAY`` messages is not replayed
(``recovered: false``): the client could not take it in one go anyway and reloads over
REST instead.
"""

from __future__ import annotations

import logging

import msgspec
from nats.js import JetStreamContext
from nats.js.api import RawStreamMsg, StreamInfo
from nats.js.errors import NotFoundError

from herald_common import wire
from herald_common.history import Stored, TooManyError, read_range
from herald_common.streams import TOPICS_STREAM, epoch_of
from herald_common.topics import matches, pattern_subject, subject_topic
from herald_gateway.metrics import Metrics
from herald_gateway.recovery import gap_is_covered

log = logging.getLogger("herald.gateway")


class TopicsStream:
    """Reads of the TOPICS stream; ``epoch`` is the one stamped on live frames."""

    def __init__(self, js: JetStreamContext, max_replay: int, metrics: Metrics) -> None:
        self._js = js
        self._max_replay = max_replay
        self._metrics = metrics
        #: The stream's epoch as last read (a reconnect catch-up or replay may move it on).
        self.epoch = "0"

    async def refresh_epoch(self) -> None:
        try:
            info = await self.info()
        except Exception:
            log.warning("could not read the %s stream; keeping epoch %s", TOPICS_STREAM, self.epoch, exc_info=True)
            return
        epoch = epoch_of(info)
        if epoch != self.epoch:
            log.info("topics epoch is %s", epoch)
        self.epoch = epoch

    async def info(self) -> StreamInfo:
        return await self._js.stream_info(TOPICS_STREAM)

    async def read(self, subject: str, after: int, through: int) -> list[Stored]:
        """The stored messages on ``subject`` in ``(after, through]``.

        Raises :class:`~herald_common.history.TooManyError` past ``HERALD_MAX_REPLAY``.
        """
        return await read_range(self._js, subject, after, through, self._max_replay)

    async def read_missed(self, pattern: str, since: wire.Since) -> tuple[list[bytes] | None, int]:
        """The encoded missed messages and the last stream sequence they cover.

        None when they cannot all be replayed (other epoch, trimmed history, too many).
        """
        info = await self.info()
        epoch = epoch_of(info)
        self.epoch = epoch
        if since.epoch != epoch:
            return None, 0
        first, last = info.state.first_seq, info.state.last_seq
        offset = since.offset
        if offset > last:
            return None, 0
        try:
            stored = await self.read(pattern_subject(pattern), offset, last)
        except TooManyError:
            return None, 0
        subjects = {m.subject for m in stored}
        anchor_matches = False
        oldest: dict[str, int] = {}
        if offset > 0:
            anchor = await self._stored(seq=offset)
            anchor_matches = anchor is not None and matches(pattern, subject_topic(anchor.subject or ""))
            for subject in subjects:
                head = await self._stored(seq=1, subject=subject)
                if head is not None and head.seq is not None:
                    oldest[subject] = head.seq
        covered = gap_is_covered(
            offset=offset,
            first_seq=first,
            last_seq=last,
            anchor_matches=anchor_matches,
            oldest_by_subject=oldest,
            replayed_subjects=subjects,
        )
        if not covered:
            return None, 0
        return [f for f in (self._replay_frame(m, epoch) for m in stored) if f is not None], last

    async def _stored(self, seq: int, subject: str | None = None) -> RawStreamMsg | None:
        """The message at ``seq`` (or, with ``subject``, the first on it from ``seq``)."""
        try:
            if subject is None:
                return await self._js.get_msg(TOPICS_STREAM, seq=seq)
            return await self._js.get_msg(TOPICS_STREAM, seq=seq, subject=subject, next=True)
        except NotFoundError:
            return None

    def _replay_frame(self, msg: Stored, epoch: str) -> bytes | None:
        try:
            topic = subject_topic(msg.subject)
            publication = wire.decode_publication(msg.data)
        except (ValueError, msgspec.DecodeError):
            self._metrics.dropped.inc()
            return None
        return wire.encode(
            wire.Message(
                topic=topic,
                data=publication.data,
                offset=msg.seq,
                epoch=epoch,
                event=publication.event,
                publisher=publication.publisher,
            )
        )
