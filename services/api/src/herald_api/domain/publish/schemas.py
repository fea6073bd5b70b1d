"""Wire shapes of ``POST /api/publish``."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from msgspec import Meta


class PublishRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    topic: Annotated[str, Meta(description="A concrete topic, e.g. `orders.eu.created`.")]
    data: Annotated[Any, Meta(description="Any JSON value, delivered as the message `data`.")]


class PublishAccepted(msgspec.Struct, kw_only=True, rename="camel"):
    event_id: Annotated[str, Meta(description="Id of the `topic.published` event.")]
