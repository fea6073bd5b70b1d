"""A subscription as the application sees it: an async iterator of :class:`Message`.

Messages wait in a bounded buffer; when it is full the client stops reading the socket
until the app catches up, so a slow consumer is noticed by the gateway (4009) instead of
filling memory here (the client then reconnects and resumes).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Generic, TypeVar

from herald_client.messages import Gap, Message, PresenceEvent
from herald_client.resume import Position
from herald_client.states import SubscriptionState

if TYPE_CHECKING:
    from herald_client.routing import Entry

GapCallback = Callable[[Gap], None]
PresenceCallback = Callable[[PresenceEvent], None]
T = TypeVar("T")
log = logging.getLogger("herald_client")


class _Buffer(Generic[T]):
    """A bounded FIFO whose end (with or without an error) is seen after its items."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._items: deque[T] = deque()
        self._readable = asyncio.Event()
        self._writable = asyncio.Event()
        self._writable.set()
        self.ended = False
        self.error: BaseException | None = None

    def __len__(self) -> int:
        return len(self._items)

    def full(self) -> bool:
        return len(self._items) >= self.limit and not self.ended

    async def put(self, item: T) -> None:
        while len(self._items) >= self.limit and not self.ended:
            self._writable.clear()
            await self._writable.wait()
        if not self.ended:
            self._items.append(item)
            self._readable.set()

    def put_nowait(self, item: T) -> None:
        """Add without waiting; over the limit the oldest unread item is dropped."""
        if not self.ended:
            if len(self._items) >= self.limit:
                self._items.popleft()
            self._items.append(item)
            self._readable.set()

    def end(self, error: BaseException | None) -> None:
        if not self.ended:
            self.ended = True
            self.error = error
        self._readable.set()
        self._writable.set()

    async def get(self) -> T:
        while not self._items:
            if self.ended:
                if self.error is not None:
                    raise self.error
                raise StopAsyncIteration
            self._readable.clear()
            await self._readable.wait()
        item = self._items.popleft()
        if len(self._items) < self.limit:
            self._writable.set()
        return item


class Subscription:
    """Messages on one pattern, each handed once and in order per topic, across reconnects.

    Iterating ends when the subscription ends: after :meth:`unsubscribe` or when the
    client closes (cleanly), or with the error that ended it (the gateway ended it,
    the client stopped for good).
    """

    def __init__(
        self,
        entry: Entry,
        unsubscribe: Callable[[str], Awaitable[None]],
        *,
        max_pending: int,
        on_gap: GapCallback | None,
        on_presence: PresenceCallback | None,
    ) -> None:
        self._entry = entry
        self._unsubscribe = unsubscribe
        self._messages: _Buffer[Message] = _Buffer(max_pending)
        self._presence: _Buffer[PresenceEvent] = _Buffer(max_pending)
        self._on_gap = on_gap
        self._on_presence = on_presence
        #: Every gap seen, in order (see :attr:`recovered`).
        self.gaps: list[Gap] = []
        self._taken: Position | None = None

    @property
    def pattern(self) -> str:
        return self._entry.pattern

    @property
    def state(self) -> SubscriptionState:
        return self._entry.state

    @property
    def recovered(self) -> bool | None:
        """The answer to the last resume: True (nothing missed), False (reload from REST
        history; see :attr:`gaps`), None (never resumed)."""
        return self._entry.recovered

    @property
    def position(self) -> Position | None:
        """Offset and epoch of the last message the app took from this subscription: store
        it and pass it as ``since`` to resume there later (e.g. after the app restarts)."""
        return self._taken

    @property
    def members(self) -> frozenset[str]:
        """With ``presence=True``: the users present on the topic. After each (re)subscribe
        the client asks the gateway who is there, then follows the join/leave events."""
        return frozenset(self._entry.members)

    def on_state_change(self, listener: Callable[[SubscriptionState, SubscriptionState], None]) -> Callable[[], None]:
        """Call ``listener(old, new)`` on every state change; returns a function that stops it."""
        return self._entry.machine.listen(listener)

    def __aiter__(self) -> AsyncIterator[Message]:
        return self

    async def __anext__(self) -> Message:
        message = await self._messages.get()
        self._taken = Position(message.offset, message.epoch)
        return message

    async def presence_events(self) -> AsyncIterator[PresenceEvent]:
        """Join and leave events (with ``presence=True``), until the subscription ends; at
        most ``max_pending`` unread ones are kept (the oldest are dropped)."""
        while True:
            try:
                yield await self._presence.get()
            except StopAsyncIteration:
                return

    async def unsubscribe(self) -> None:
        await self._unsubscribe(self.pattern)

    # called by the client

    def _full(self) -> bool:
        return self._messages.full()

    async def _deliver(self, message: Message) -> None:
        await self._messages.put(message)

    def _gap(self, gap: Gap) -> None:
        self.gaps.append(gap)
        if self._on_gap is not None:
            try:
                self._on_gap(gap)
            except Exception:  # the application's callback must not stop the socket's reader
                log.exception("on_gap callback failed")

    def _presence_event(self, event: PresenceEvent) -> None:
        self._presence.put_nowait(event)
        if self._on_presence is not None:
            try:
                self._on_presence(event)
            except Exception:
                log.exception("on_presence callback failed")

    def _finish(self, error: BaseException | None) -> None:
        self._messages.end(error)
        self._presence.end(None)
