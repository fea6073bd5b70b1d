"""Raw publications: stored on their topic, in JetStream or the outbox, before the 202.

A raw publication names its one topic, so, like a socket publish, it needs no mapping by
the bridge: the api stores it on the topic's subject itself. That is one JetStream write
per message instead of two (an event, then the bridge's publication), and no bridge work.
An accepted publication is durable either way: straight in the topic stream when JetStream
is reachable and the outbox is empty (:mod:`herald_api.direct`), else in the outbox, from
where the relay publishes it in order. A batch is one atomic write in both places.

Each publication's ``Nats-Msg-Id`` is its event id, which an idempotency key fixes
(:func:`herald_common.events.keyed_event_id`): JetStream drops a repeat within its
duplicate window, whatever topic or data the repeat carries.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import msgspec
from msgspec import Raw

from herald_api.direct import DirectPublisher
from herald_api.domain.publish.schemas import PublishRequest
from herald_api.outbox import Notify, record_messages
from herald_api.storage.groupcommit import GroupCommit
from herald_api.storage.protocols import Transaction
from herald_common.errors import ErrorCode, HeraldError
from herald_common.events import keyed_event_id, random_id
from herald_common.jsbatch import MSG_ID, Outgoing
from herald_common.tokens import Claims
from herald_common.topics import is_reserved, topic_subject, validate_topic
from herald_common.wire import Publication, encode

_encoder = msgspec.json.Encoder()


@functools.lru_cache(maxsize=4096)
def _check_topic(topic: str) -> None:
    """Raise for a topic a producer may not publish to. Producers publish to the same few
    topics over and over, so accepted ones are remembered (a refusal raises and is not)."""
    validate_topic(topic)
    if is_reserved(topic):
        raise HeraldError(ErrorCode.FORBIDDEN, f"topic {topic!r} is reserved: only the api publishes in 'messages'")


def publication(event_id: str, topic: str, data: Any, publisher: str) -> Outgoing:
    """The message that puts ``data`` on ``topic`` (what a subscriber's frame is made of),
    saying who published it (the token's ``sub``), as socket publications do."""
    body = encode(Publication(data=Raw(_encoder.encode(data)), id=event_id, publisher=publisher))
    return Outgoing(topic_subject(topic), body, {MSG_ID: event_id})


class PublishService:
    def __init__(self, writes: GroupCommit, notify: Notify, direct: DirectPublisher | None = None) -> None:
        self._writes = writes
        self._notify = notify
        self._direct = direct

    async def publish(self, claims: Claims, topic: str, data: Any, idempotency_key: str | None = None) -> str:
        """Store one publication; returns its event id once it is durable."""
        self._authorize(claims)
        _check_topic(topic)
        event_id = _event_id(claims, idempotency_key)
        await self._store([publication(event_id, topic, data, claims.sub)])
        return event_id

    async def publish_batch(self, claims: Claims, items: Sequence[PublishRequest]) -> list[str]:
        """Store every item or none; a bad item is an error naming its index
        (``invalid_topic``, or ``forbidden`` for a reserved topic)."""
        self._authorize(claims)
        for index, item in enumerate(items):
            try:
                _check_topic(item.topic)
            except HeraldError as exc:
                raise HeraldError(exc.code, f"items[{index}]: {exc.message}") from None
        ids = [_event_id(claims, item.idempotency_key) for item in items]
        await self._store(
            [publication(ident, item.topic, item.data, claims.sub) for ident, item in zip(ids, items, strict=True)]
        )
        return ids

    @staticmethod
    def _authorize(claims: Claims) -> None:
        if not claims.can_publish_rest:
            raise HeraldError(ErrorCode.FORBIDDEN, "publishing needs the 'publisher' or 'admin' role")

    async def _store(self, messages: list[Outgoing]) -> None:
        if self._direct is not None and self._direct.available():
            try:
                await self._direct.publish(messages)
                return
            except Exception:  # NATS away or slow: the outbox keeps the promise instead
                pass

        async def record(tx: Transaction) -> None:
            await record_messages(tx, messages)

        await self._writes.write(record)
        self._notify()


def _event_id(claims: Claims, key: str | None) -> str:
    return keyed_event_id(claims.sub, key) if key is not None else random_id()
