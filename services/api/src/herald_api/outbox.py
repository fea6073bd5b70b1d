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
    """Add ``event`` to the outbox with the caller's trace context, so its publication
    continues the request's trace whenever and wherever the relay sends it."""
    event = new_event(type_, data)
    context = None
    if telemetry.tracing_enabled:
        headers = telemetry.carrier()
        context = msgspec.json.encode(headers).decode() if headers else None
    await tx.outbox.add(event.id, event.subject, encode_event(event), context)
    return event
