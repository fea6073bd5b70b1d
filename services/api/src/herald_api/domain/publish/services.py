"""Raw publications: ``topic.published`` events, stored in JetStream or the outbox before 202.

An accepted publication is durable either way: straight in JetStream when it is reachable
and the outbox is empty (:mod:`herald_api.direct`), else in the outbox, from where the relay
publishes it. A batch is one atomic write in both places: all of it or nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from herald_api.direct import DirectPublisher
from herald_api.outbox import Notify, record_events
from herald_api.storage.groupcommit import GroupCommit
from herald_api.storage.protocols import Transaction
from herald_common.errors import ErrorCode, HeraldError
from herald_common.events import TOPIC_PUBLISHED, Event, keyed_event_id, new_event
from herald_common.tokens import Claims
from herald_common.topics import validate_topic

#: The api's own events live here; nobody may publish into it directly.
RESERVED_NAMESPACE = "messages"


def _check_topic(topic: str) -> None:
    validate_topic(topic)
    if topic == RESERVED_NAMESPACE or topic.startswith(RESERVED_NAMESPACE + "."):
        raise HeraldError(ErrorCode.FORBIDDEN, f"topic {topic!r} is reserved: only the api publishes in 'messages'")


class PublishService:
    def __init__(self, writes: GroupCommit, notify: Notify, direct: DirectPublisher | None = None) -> None:
        self._writes = writes
        self._notify = notify
        self._direct = direct

    async def publish(self, claims: Claims, topic: str, data: Any, idempotency_key: str | None = None) -> str:
        """Store one publication; returns its event id once it is durable."""
        self._authorize(claims)
        _check_topic(topic)
        event = self._event(claims, topic, data, idempotency_key)
        await self._store([event])
        return event.id

    async def publish_batch(self, claims: Claims, items: Sequence[tuple[str, Any, str | None]]) -> list[str]:
        """Store every ``(topic, data, idempotency_key)`` or none; a bad item is a
        ``bad_request`` naming its index (or ``forbidden`` for a reserved topic)."""
        self._authorize(claims)
        for index, (topic, _, _) in enumerate(items):
            try:
                _check_topic(topic)
            except HeraldError as exc:
                raise HeraldError(exc.code, f"items[{index}]: {exc.message}") from None
        events = [self._event(claims, topic, data, key) for topic, data, key in items]
        await self._store(events)
        return [event.id for event in events]

    @staticmethod
    def _authorize(claims: Claims) -> None:
        if not claims.can_publish_rest:
            raise HeraldError(ErrorCode.FORBIDDEN, "publishing needs the 'publisher' or 'admin' role")

    @staticmethod
    def _event(claims: Claims, topic: str, data: Any, key: str | None) -> Event:
        event_id = keyed_event_id(claims.sub, key) if key is not None else None
        return new_event(TOPIC_PUBLISHED, {"topic": topic, "data": data}, event_id)

    async def _store(self, events: list[Event]) -> None:
        if self._direct is not None and self._direct.available():
            try:
                await self._direct.publish(events)
                return
            except Exception:  # NATS away or slow: the outbox keeps the promise instead
                pass

        async def record(tx: Transaction) -> None:
            await record_events(tx, events)

        await self._writes.write(record)
        self._notify()
