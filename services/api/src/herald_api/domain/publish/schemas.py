"""Wire shapes of ``POST /api/publish`` and ``POST /api/publish/batch``."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from msgspec import Meta

#: Items one batch request may carry at most (one JetStream atomic batch).
MAX_BATCH_ITEMS = 1000
MAX_IDEMPOTENCY_KEY = 256

IdempotencyKey = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=MAX_IDEMPOTENCY_KEY,
        description=(
            "Optional. A repeat of the same key by the same publisher within HERALD_DEDUP_WINDOW "
            "(120 s by default) returns the first `eventId` and publishes nothing."
        ),
    ),
]


class PublishRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, rename="camel"):
    topic: Annotated[str, Meta(description="A concrete topic, e.g. `orders.eu.created`.")]
    data: Annotated[Any, Meta(description="Any JSON value, delivered as the message `data`.")]
    idempotency_key: IdempotencyKey | None = None


class PublishAccepted(msgspec.Struct, kw_only=True, rename="camel"):
    event_id: Annotated[str, Meta(description="Id of the `topic.published` event.")]


class BatchRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    items: Annotated[
        list[PublishRequest],
        Meta(
            min_length=1,
            max_length=MAX_BATCH_ITEMS,
            description=f"1 to {MAX_BATCH_ITEMS} publications; items of one topic are delivered in this order.",
        ),
    ]


class BatchAccepted(msgspec.Struct, kw_only=True, rename="camel"):
    event_ids: Annotated[list[str], Meta(description="Id of each item's `topic.published` event, in item order.")]
