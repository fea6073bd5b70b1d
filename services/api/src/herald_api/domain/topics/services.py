"""Topic history and presence: authorize like a gateway subscription, then read the stream or ask a gateway."""

from __future__ import annotations

from typing import Protocol

from herald_api.storage.protocols import Storage
from herald_api.topichistory import StoredPage
from herald_common import presence
from herald_common.access import NeedsMembership, Verdict, authorize_subscribe
from herald_common.errors import ErrorCode, HeraldError
from herald_common.tokens import Claims
from herald_common.topics import validate_topic

DEFAULT_PAGE = 50


class HistoryReader(Protocol):
    async def read(self, topic: str, since: int, limit: int) -> StoredPage: ...


class PresenceReader(Protocol):
    async def read(self, topic: str) -> presence.TopicPresence: ...


def _forbidden(topic: str) -> HeraldError:
    return HeraldError(ErrorCode.FORBIDDEN, f"not allowed to read {topic!r}")


class TopicService:
    def __init__(self, storage: Storage, reader: HistoryReader, page_limit_max: int, presence: PresenceReader) -> None:
        self._storage = storage
        self._reader = reader
        self._presence = presence
        self._page_limit_max = page_limit_max

    async def _authorize(self, claims: Claims, topic: str) -> None:
        decision = authorize_subscribe(claims, topic)
        if decision is Verdict.ALLOW:
            return
        if isinstance(decision, NeedsMembership):
            async with self._storage.transaction(read_only=True) as tx:
                if await tx.channels.is_member(decision.channel_id, claims.sub):
                    return
        raise _forbidden(topic)

    async def history(self, claims: Claims, topic: str, since: int, limit: int | None) -> StoredPage:
        validate_topic(topic)
        await self._authorize(claims, topic)
        size = min(limit or DEFAULT_PAGE, self._page_limit_max)
        return await self._reader.read(topic, since, size)

    async def presence(self, claims: Claims, topic: str) -> presence.TopicPresence:
        validate_topic(topic)
        await self._authorize(claims, topic)
        return await self._presence.read(topic)
