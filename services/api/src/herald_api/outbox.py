"""Writing domain events (and raw topic publications) into the outbox inside the caller's transaction."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

from herald_api.storage.protocols import Transaction
from herald_common import telemetry
from herald_common.events import Event, encode_event, new_event
from herald_common.jsbatch import MSG_ID, Outgoing

#: Called after a transaction that wrote outbox rows has committed.
Notify = Callable[[], None]


async def record_event(tx: Transaction, type_: str, data: dict[str, Any]) -> Event:
    """Add a new event to the outbox (see :func:`record_events`)."""
    event = new_event(type_, data)
    await record_events(tx, [event])
    return event


async def record_events(tx: Transaction, events: list[Event]) -> None:
    """Add ``events`` to the outbox, in order (see :func:`record_messages`)."""
    await record_messages(tx, [Outgoing(event.subject, encode_event(event), {MSG_ID: event.id}) for event in events])


async def record_messages(tx: Transaction, messages: list[Outgoing]) -> None:
    """Add ``messages`` to the outbox, in order, each under its ``Nats-Msg-Id``, with the
    caller's trace context, so their publication continues the request's trace whenever
    and wherever the relay sends them."""
    context = None
    if telemetry.tracing_enabled:
        headers = telemetry.carrier()
        context = msgspec.json.encode(headers).decode() if headers else None
    for message in messages:
        await tx.outbox.add(message.headers[MSG_ID], message.subject, message.payload, context)
