"""Wire shapes of the messages endpoints (camelCase JSON)."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from msgspec import Meta

from herald_api.storage.protocols import Message
from herald_common.timefmt import rfc3339_us

MAX_CONTENT_LENGTH = 16_384

Content = Annotated[str, Meta(min_length=1, max_length=MAX_CONTENT_LENGTH, description="Message text.")]
UserId = Annotated[str, Meta(min_length=1, max_length=255)]
ChannelId = Annotated[str, Meta(min_length=1, max_length=64)]


class CreateMessage(msgspec.Struct, kw_only=True, rename="camel", forbid_unknown_fields=True):
    """A direct message (``recipientId``), a channel message (``channelId``), or neither."""

    content: Content
    recipient_id: UserId | None = None
    channel_id: ChannelId | None = None


class UpdateMessage(msgspec.Struct, kw_only=True, rename="camel", forbid_unknown_fields=True):
    content: Content


class MessageResource(msgspec.Struct, kw_only=True, rename="camel"):
    id: str
    sender_id: str
    recipient_id: str | None
    channel_id: str | None
    content: str
    created_at: Annotated[str, Meta(description="RFC 3339 UTC timestamp with microseconds.")]


class MessagePage(msgspec.Struct, kw_only=True, rename="camel"):
    """One page of history, newest first."""

    items: list[MessageResource]
    next_before: Annotated[
        str | None,
        Meta(description="Pass as `before` to get the next (older) page; null on the last page."),
    ]


def message_resource(message: Message) -> MessageResource:
    return MessageResource(
        id=message.id,
        sender_id=message.sender_id,
        recipient_id=message.recipient_id,
        channel_id=message.channel_id,
        content=message.content,
        created_at=rfc3339_us(message.created_us),
    )


def message_event_data(message: Message) -> dict[str, Any]:
    data: dict[str, Any] = msgspec.to_builtins(message_resource(message))
    return data
