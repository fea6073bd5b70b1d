"""Writing domain events into the outbox inside the caller's transaction."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

from herald_api.storage.protocols import Transaction
from herald_common import telemetry
from herald_common.events import Event, encode_event, new_event

#: Called after a transaction that wrote outbox rows has committed.
Notify = Callable[[], None]


async def record_event(tx: Transaction, type_: str, data: dict[str, Any]) -> Event:
    """Add a new event to the outbox (see :func:`record_events`)."""
    event = new_event(type_, data)
    await record_events(tx, [event])
    return event


async def record_events(tx: Transaction, events: list[Event]) -> None:
    """Add ``events`` to the outbox, in order, with the caller's trace context, so their
    publication continues the request's trace whenever and wherever the relay sends them."""
    context = None
    if telemetry.tracing_enabled:
        headers = telemetry.carrier()
        context = msgspec.json.encode(headers).decode() if headers else None
    for event in events:
        await tx.outbox.add(event.id, event.subject, encode_event(event), context)
