"""Raw publications: a ``topic.published`` event in the outbox."""

from __future__ import annotations

from typing import Any

from herald_api.outbox import Notify, record_event
from herald_api.storage.groupcommit import GroupCommit
from herald_api.storage.protocols import Transaction
from herald_common.errors import ErrorCode, HeraldError
from herald_common.events import TOPIC_PUBLISHED
from herald_common.tokens import Claims
from herald_common.topics import is_reserved, validate_topic


class PublishService:
    def __init__(self, writes: GroupCommit, notify: Notify) -> None:
        self._writes = writes
        self._notify = notify

    async def publish(self, claims: Claims, topic: str, data: Any) -> str:
        if not claims.can_publish_rest:
            raise HeraldError(ErrorCode.FORBIDDEN, "publishing needs the 'publisher' or 'admin' role")
        if is_reserved(validate_topic(topic)):
            raise HeraldError(ErrorCode.FORBIDDEN, "the messages namespace carries only the api's own events")

        async def store(tx: Transaction) -> str:
            event = await record_event(tx, TOPIC_PUBLISHED, {"topic": topic, "data": data})
            return event.id

        event_id = await self._writes.write(store)
        self._notify()
        return event_id
