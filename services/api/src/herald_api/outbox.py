"""Writing domain events into the outbox inside the caller's transaction."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from herald_api.storage.protocols import Transaction
from herald_common.events import Event, encode_event, new_event

#: Called after a transaction that wrote outbox rows has committed.
Notify = Callable[[], None]


async def record_event(tx: Transaction, type_: str, data: dict[str, Any]) -> Event:
    event = new_event(type_, data)
    await tx.outbox.add(event.id, event.subject, encode_event(event))
    return event
