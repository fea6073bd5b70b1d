"""Domain events: what the api emits on ``events.<type>`` and the bridge consumes."""

from __future__ import annotations

import collections
import hashlib
import os
from typing import Any

import msgspec

from herald_common.timefmt import now_rfc3339

EVENT_PREFIX = "events."

MESSAGE_SENT = "message.sent"
MESSAGE_UPDATED = "message.updated"
MESSAGE_DELETED = "message.deleted"
MESSAGE_EVENTS = frozenset({MESSAGE_SENT, MESSAGE_UPDATED, MESSAGE_DELETED})

#: A user lost access to a channel (removed, or the channel deleted): gateways drop
#: matching live subscriptions. ``data``: ``{"channelId", "userId"}`` (``userId`` null
#: when the whole channel is gone).
CHANNEL_ACCESS_REVOKED = "channel.access_revoked"

#: A raw publication from ``POST /api/publish``: ``data`` is ``{"topic", "data"}``.
TOPIC_PUBLISHED = "topic.published"


class Event(msgspec.Struct, frozen=True, rename="camel"):
    """One domain event. ``id`` is unique and used to deduplicate redeliveries."""

    id: str
    type: str
    occurred_at: str
    data: dict[str, Any]

    @property
    def subject(self) -> str:
        return EVENT_PREFIX + self.type


#: Ids made ahead from one ``os.urandom`` read (a system call per id cost more than the
#: rest of making it). A deque, since ``popleft`` hands each one out once whatever the
#: thread; emptied in a forked child, which must not repeat its parent's ids.
_ids: collections.deque[str] = collections.deque()
_IDS_AHEAD = 256
os.register_at_fork(after_in_child=_ids.clear)


def _make_ids() -> None:
    raw = bytearray(os.urandom(16 * _IDS_AHEAD))
    for start in range(0, len(raw), 16):
        one = raw[start : start + 16]
        one[6] = (one[6] & 0x0F) | 0x40
        one[8] = (one[8] & 0x3F) | 0x80
        _ids.append(one.hex())


def random_id() -> str:
    """A random id as 32 hex digits, laid out as a version-4 UUID (what ``uuid.uuid4().hex``
    gives, without building a ``UUID`` object: ids are made per published message)."""
    while True:
        try:
            return _ids.popleft()
        except IndexError:
            _make_ids()


def new_event(type_: str, data: dict[str, Any], event_id: str | None = None) -> Event:
    """A new event; ``event_id`` defaults to a random one (see :func:`keyed_event_id`)."""
    return Event(
        id=event_id or random_id(),
        type=type_,
        occurred_at=now_rfc3339(),
        data=data,
    )


def keyed_event_id(owner: str, key: str) -> str:
    """The event id of ``owner``'s publication with idempotency ``key``: the same pair gives
    the same id, so JetStream drops a repeat as a duplicate of the first (the id is its
    ``Nats-Msg-Id``), and different owners' keys never collide."""
    scoped = f"{len(owner)}:{owner}:{key}".encode()
    return hashlib.blake2b(scoped, digest_size=16, person=b"herald-idem").hexdigest()


_decoder = msgspec.json.Decoder(Event)
_encoder = msgspec.json.Encoder()


def encode_event(event: Event) -> bytes:
    return _encoder.encode(event)


def decode_event(data: bytes) -> Event:
    return _decoder.decode(data)
