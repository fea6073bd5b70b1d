"""Wire shapes of ``GET /api/topics/{topic}/history`` and ``/presence`` (camelCase JSON)."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from msgspec import UNSET, Meta, UnsetType


class HistoryItem(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One stored message, exactly as a gateway delivers it in a ``message`` frame (minus ``type``)."""

    topic: str
    data: Annotated[Any, Meta(description="The message payload (any JSON value).")]
    offset: Annotated[int, Meta(ge=1, description="Stream sequence of the message; increases per topic.")]
    epoch: Annotated[str, Meta(description="History epoch; changes when the stored history is lost.")]
    event: Annotated[str, Meta(description="Event name (`message.sent`, ...) for events from the api.")] | UnsetType = (
        UNSET
    )
    publisher: (
        Annotated[str, Meta(description="The `sub` of who published it, when the stored publication says.")] | UnsetType
    ) = UNSET


class HistoryPage(msgspec.Struct, kw_only=True, rename="camel"):
    """Stored messages of one topic, oldest first."""

    items: list[HistoryItem]
    epoch: Annotated[str, Meta(description="Epoch of the history these offsets belong to.")]
    next_since: Annotated[
        int | None,
        Meta(description="Pass as `since` to get the next page; null when nothing more is stored yet."),
    ]


class PresenceUser(msgspec.Struct, kw_only=True, rename="camel"):
    user_id: Annotated[str, Meta(description="The user's `sub`.")]
    connections: Annotated[
        int, Meta(ge=0, description="Their sockets subscribed to the topic, summed over every gateway.")
    ]


class TopicPresence(msgspec.Struct, kw_only=True, rename="camel", omit_defaults=True):
    """Who is subscribed to one exact topic now, on any gateway."""

    topic: str
    count: Annotated[int, Meta(ge=0, description="Users on the topic.")]
    users: (
        Annotated[
            list[PresenceUser],
            Meta(description="Sorted by `userId`; left out when `count` is above HERALD_PRESENCE_MAX_USERS."),
        ]
        | UnsetType
    ) = UNSET
