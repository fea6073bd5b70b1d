"""Which topics an event belongs on, and what is published there (pure functions)."""

from __future__ import annotations

from typing import Any

import msgspec
from msgspec import Raw

from herald_common.errors import HeraldError
from herald_common.events import MESSAGE_EVENTS, TOPIC_PUBLISHED, Event
from herald_common.topics import is_token, validate_topic
from herald_common.wire import Publication

ALL_MESSAGES = "messages"

_encoder = msgspec.json.Encoder()


def _token(value: Any) -> str | None:
    """``value`` if it can stand as one topic token (ids with dots or spaces cannot)."""
    return value if isinstance(value, str) and is_token(value) else None


def topics_for(event: Event) -> list[str]:
    """The topics ``event`` is delivered on, without duplicates, in a stable order.

    Message events reach ``messages``, the sender's and the recipient's user topics, and
    the channel topic. A ``topic.published`` event reaches the one topic it names. Other
    events (and malformed ones, whose ids would not form a valid topic) reach none.
    """
    data = event.data
    topics: list[str] = []
    if event.type in MESSAGE_EVENTS:
        topics.append(ALL_MESSAGES)
        for key, prefix in (
            ("senderId", "messages.user."),
            ("recipientId", "messages.user."),
            ("channelId", "messages.channel."),
        ):
            ident = _token(data.get(key))
            if ident is not None:
                topics.append(prefix + ident)
    elif event.type == TOPIC_PUBLISHED:
        topic = data.get("topic")
        if isinstance(topic, str):
            topics.append(topic)
    valid: list[str] = []
    for topic in topics:
        try:
            validate_topic(topic)
        except HeraldError:
            continue
        if topic not in valid:
            valid.append(topic)
    return valid


def publication_for(event: Event) -> Publication:
    """The body published on each topic of ``event`` (encoded once, reused for every topic)."""
    if event.type == TOPIC_PUBLISHED:
        return Publication(data=Raw(_encoder.encode(event.data.get("data"))), id=event.id)
    return Publication(data=Raw(_encoder.encode(event.data)), event=event.type, id=event.id)


def message_id(event: Event, topic: str) -> str:
    """The ``Nats-Msg-Id`` of ``event`` on ``topic``: a redelivered event is dropped as a duplicate."""
    return f"{event.id}:{topic}"
