"""Keepalive pings for every connection from one task, instead of one task per connection.

``websockets`` gives each connection its own keepalive task (sleep, ping, wait for the
pong). With tens of thousands of idle connections those tasks cost about 2 KiB each and
their creation shows in the accept path, so the gateway runs the same schedule for all
connections here: each is pinged ``interval`` seconds after it opened and then
``interval`` seconds after each ping; a connection whose pong has not come ``timeout``
seconds after its ping is failed with 1011 ("keepalive ping timeout"), as ``websockets``
itself would.

:class:`Schedule` is the bookkeeping without I/O (what is due at a given time);
:class:`Keepalive` runs it against the connections' ``ping``.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
import weakref
from collections import deque
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

from websockets.exceptions import ConnectionClosed
from websockets.frames import CloseCode

log = logging.getLogger("herald.gateway")

#: How often the schedule is looked at (seconds); pings go out at most this late.
TICK = 0.5

C = TypeVar("C")


@dataclass
class Schedule(Generic[C]):
    """Which connections to ping and which missed their pong, by time (no I/O).

    Connections are held by weak reference: one that closes is gone from the schedule as
    soon as nothing else holds it, not when its next ping would have been due (with many
    connects and disconnects, that would keep an interval's worth of dead connections).
    """

    interval: float
    timeout: float
    _due: list[tuple[float, int, weakref.ref[C]]] = field(default_factory=list)
    #: (when the ping went, connection, pong future), in the order the pings went
    _waiting: deque[tuple[float, weakref.ref[C], asyncio.Future[float]]] = field(default_factory=deque)
    _order: itertools.count[int] = field(default_factory=itertools.count)

    def add(self, conn: C, now: float) -> None:
        """``conn`` opened at ``now``: its first ping is due one interval later."""
        self._push(now + self.interval, weakref.ref(conn))

    def _push(self, when: float, ref: weakref.ref[C]) -> None:
        heapq.heappush(self._due, (when, next(self._order), ref))

    def due(self, now: float) -> list[C]:
        """The connections whose ping is due at ``now`` (each is then no longer scheduled)."""
        out = []
        while self._due and self._due[0][0] <= now:
            conn = heapq.heappop(self._due)[2]()
            if conn is not None:
                out.append(conn)
        return out

    def sent(self, conn: C, now: float, pong: asyncio.Future[float]) -> None:
        """A ping went to ``conn`` at ``now``; ``pong`` completes when its pong arrives."""
        self._waiting.append((now, weakref.ref(conn), pong))

    def _settled(self, sent: float, ref: weakref.ref[C], pong: asyncio.Future[float]) -> None:
        # Answered: the next ping is one interval after this one. A failed pong future
        # means the connection closed: nothing more to do.
        if not pong.cancelled() and pong.exception() is None:
            self._push(sent + self.interval, ref)

    def expired(self, now: float) -> list[C]:
        """Connections whose pong did not come in time; the others that answered are scheduled again."""
        late = []
        while self._waiting and self._waiting[0][0] + self.timeout <= now:
            sent, ref, pong = self._waiting.popleft()
            if pong.done():
                self._settled(sent, ref, pong)
                continue
            pong.cancel()
            conn = ref()
            if conn is not None:
                late.append(conn)
        return late

    def answered(self) -> None:
        """Schedule again the connections whose pong came, without waiting for their deadline."""
        while self._waiting and self._waiting[0][2].done():
            self._settled(*self._waiting.popleft())

    def __len__(self) -> int:
        return len(self._due) + len(self._waiting)


class Pingable(Protocol):
    """What keepalive needs from a connection (:class:`~herald_gateway.connection.ClientConnection`)."""

    async def ping(self) -> Awaitable[float]: ...

    async def fail(self, code: int, reason: str) -> None: ...

    @property
    def open(self) -> bool: ...


class Keepalive:
    """Runs a :class:`Schedule` against the connections' ``ping`` and ``fail``."""

    def __init__(self, interval: float, timeout: float) -> None:
        self.schedule: Schedule[Pingable] = Schedule(interval, timeout)
        #: pings being sent and connections being failed
        self._tasks: set[asyncio.Task[None]] = set()
        self.timeouts = 0

    def add(self, conn: Pingable) -> None:
        """Ping ``conn`` from now on (a closed connection drops out by itself)."""
        self.schedule.add(conn, asyncio.get_running_loop().time())

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(TICK)
            await self.tick(loop.time())

    async def tick(self, now: float) -> None:
        schedule = self.schedule
        schedule.answered()
        for conn in schedule.expired(now):
            if conn.open:
                self.timeouts += 1
                failing = conn.fail(CloseCode.INTERNAL_ERROR, "keepalive ping timeout")
                self._spawn(asyncio.get_running_loop().create_task(failing))
        loop = asyncio.get_running_loop()
        for conn in schedule.due(now):
            if conn.open:  # else closed since: forgotten
                # A task each: sending a ping waits while the client's socket is full, and
                # one stalled client must not hold up the pings of the others.
                self._spawn(loop.create_task(self._ping(conn, now)))

    async def _ping(self, conn: Pingable, now: float) -> None:
        try:
            pong = await conn.ping()
        except ConnectionClosed:
            return
        self.schedule.sent(conn, now, asyncio.ensure_future(pong))

    def _spawn(self, task: asyncio.Task[None]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
