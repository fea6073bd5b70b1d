"""Wire shapes of ``GET /api/topics/{topic}/history`` (camelCase JSON)."""

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
