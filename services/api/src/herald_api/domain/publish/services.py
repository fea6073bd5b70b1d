"""Raw publications: a ``topic.published`` event in the outbox."""

from __future__ import annotations

from typing import Any

from herald_api.outbox import Notify, record_event
from herald_api.storage.protocols import Storage
from herald_common.errors import ErrorCode, HeraldError
from herald_common.events import TOPIC_PUBLISHED
from herald_common.tokens import Claims
from herald_common.topics import validate_topic


class PublishService:
    def __init__(self, storage: Storage, notify: Notify) -> None:
        self._storage = storage
        self._notify = notify

    async def publish(self, claims: Claims, topic: str, data: Any) -> str:
        if not claims.can_publish_rest:
            raise HeraldError(ErrorCode.FORBIDDEN, "publishing needs the 'publisher' or 'admin' role")
        validate_topic(topic)
        async with self._storage.transaction() as tx:
            event = await record_event(tx, TOPIC_PUBLISHED, {"topic": topic, "data": data})
        self._notify()
        return event.id
