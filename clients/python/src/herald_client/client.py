"""The asyncio client: drives the sans-I/O :class:`~herald_client.core.Core` with ``websockets``.

One task reads the socket and reconnects; one task runs the core's timers. Everything
the protocol decides (what to send, when to ping, refresh, reconnect, what to hand to
which subscription) is decided in the core; this module only performs it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable
from http import HTTPStatus
from types import TracebackType
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI

from herald_client.backoff import Backoff
from herald_client.core import Core, Timing
from herald_client.errors import ClientClosedError, ConnectTimeoutError, HeraldClientError
from herald_client.messages import PresenceSnapshot, PublishResult
from herald_client.outputs import (
    Abort,
    CloseSocket,
    Deliver,
    Ended,
    FetchToken,
    GapFound,
    Notice,
    Output,
    Presence,
    ReconnectIn,
    Reject,
    Resolve,
    Send,
    Stopped,
)
from herald_client.resume import Position
from herald_client.states import ClientState
from herald_client.subscription import GapCallback, PresenceCallback, Subscription
from herald_client.tokens import TokenSource

log = logging.getLogger("herald_client")

NoticeCallback = Callable[[str, str], None]


class Client:
    """A connection to a Herald gateway that reconnects and resumes by itself.

    ``token`` is a JWT string, or an async callable returning one: it is called for
    every connection and before the token expires (then sent as ``auth`` on the live
    socket). See docs/clients.md for the reconnect policy and what resume promises.
    """

    def __init__(
        self,
        url: str,
        token: TokenSource,
        *,
        reconnect_min: float = 0.5,
        reconnect_max: float = 20.0,
        limited_floor: float = 5.0,
        ping_interval: float = 15.0,
        ping_timeout: float = 10.0,
        request_timeout: float = 10.0,
        connect_timeout: float = 30.0,
        open_timeout: float = 10.0,
        max_pending: int = 10_000,
        on_state_change: Callable[[ClientState, ClientState], None] | None = None,
        on_notice: NoticeCallback | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.url = url
        self._token = token
        backoff = Backoff(reconnect_min, reconnect_max, limited_floor, rng or random.Random())
        timing = Timing(ping_interval=ping_interval, ping_timeout=ping_timeout, request_timeout=request_timeout)
        self._core = Core(refreshable_token=callable(token), backoff=backoff, timing=timing)
        self._connect_timeout = connect_timeout
        self._open_timeout = open_timeout
        self._max_pending = max_pending
        self._on_notice = on_notice
        self._ws: ClientConnection | None = None
        self._subs: dict[str, Subscription] = {}
        self._waiters: dict[int, asyncio.Future[Any]] = {}
        self._changed = asyncio.Event()
        self._stopped = asyncio.Event()
        self._wake = asyncio.Event()
        self._timer_at: float | None = None
        self._reconnect_delay: float | None = None
        self._runner: asyncio.Task[None] | None = None
        self._timers: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        #: How many sockets reached ``auth_success`` (1 + reconnects).
        self.connections = 0
        self._core.machine.listen(self._note_state)
        if on_state_change is not None:
            self._core.machine.listen(on_state_change)

    @property
    def state(self) -> ClientState:
        return self._core.state

    @property
    def user_id(self) -> str | None:
        """The ``sub`` the gateway authenticated (None before the first ``auth_success``)."""
        return self._core.user_id

    @property
    def close_codes(self) -> list[int | None]:
        """The close code of every lost socket or failed attempt so far (None: no code)."""
        return list(self._core.close_codes)

    @property
    def error(self) -> Exception | None:
        """Why the client closed for good (None while it runs or when the app closed it)."""
        return self._core.error

    def on_state_change(self, listener: Callable[[ClientState, ClientState], None]) -> Callable[[], None]:
        """Call ``listener(old, new)`` on every state change; returns a function that stops it."""
        return self._core.machine.listen(listener)

    async def __aenter__(self) -> Client:
        await self.connect()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def connect(self) -> None:
        """Connect and authenticate; returns once connected, retrying with backoff meanwhile.

        Raises :class:`ConnectTimeoutError` after ``connect_timeout`` (the client is then
        closed), or the error that closed the client (e.g. :class:`AuthenticationError`).
        """
        self._core.start()
        self._runner = asyncio.create_task(self._run(), name="herald-client-socket")
        self._timers = asyncio.create_task(self._run_timers(), name="herald-client-timers")
        try:
            await asyncio.wait_for(self._until(ClientState.CONNECTED), self._connect_timeout)
        except TimeoutError:
            await self.close()
            raise ConnectTimeoutError(f"not connected to {self.url} within {self._connect_timeout:g}s") from None
        if self.state is ClientState.CLOSED:
            await self._shutdown_tasks()
            raise self._core.error or ClientClosedError("the client was closed while connecting")

    async def _until(self, state: ClientState) -> None:
        while self.state is not state and self.state is not ClientState.CLOSED:
            self._changed.clear()
            await self._changed.wait()

    async def subscribe(
        self,
        pattern: str,
        *,
        presence: bool = False,
        since: Position | None = None,
        on_gap: GapCallback | None = None,
        on_presence: PresenceCallback | None = None,
    ) -> Subscription:
        """Subscribe to ``pattern``; returns once the gateway answered ``subscribed``.

        ``since`` resumes from a position kept from earlier (``Subscription.position``).
        ``presence=True`` (exact topics) also delivers join/leave events. Raises
        :class:`ServerError` when the gateway refuses (``forbidden``, ``invalid_topic``, ...).
        """
        self._check_started()
        entry, rid, out = self._core.subscribe(pattern, presence, time.monotonic(), since=since)
        sub = Subscription(
            entry, self._unsubscribe, max_pending=self._max_pending, on_gap=on_gap, on_presence=on_presence
        )
        self._subs[pattern] = sub
        waiter = self._expect(rid)
        await self._apply(out)
        try:
            await waiter
        except BaseException:
            if self._subs.get(pattern) is sub:
                await self._unsubscribe(pattern)
            raise
        return sub

    async def _unsubscribe(self, pattern: str) -> None:
        rid, out = self._core.unsubscribe(pattern, time.monotonic())
        waiter = self._expect(rid)
        await self._apply(out)
        with contextlib.suppress(HeraldClientError):
            await waiter

    async def publish(self, topic: str, data: Any) -> PublishResult:
        """Publish ``data`` (any JSON value) to ``topic``; returns once the gateway stored it.

        Needs a ``publish`` grant in the token. Raises :class:`ServerError` (e.g.
        ``forbidden``), :class:`RequestTimeoutError`, or :class:`ConnectionLostError` when
        the socket closed before the answer (the message may or may not be stored). While
        the client reconnects the publish waits for the connection (within the timeout).
        """
        self._check_started()
        rid, out = self._core.publish(topic, data, time.monotonic())
        waiter = self._expect(rid)
        await self._apply(out)
        result: PublishResult = await waiter
        return result

    async def presence(self, topic: str) -> PresenceSnapshot:
        """Who is subscribed to the exact ``topic`` now, on any gateway: a
        :class:`PresenceSnapshot` (``count``, and ``users`` unless above the gateway's cap)."""
        self._check_started()
        rid, out = self._core.presence(topic, time.monotonic())
        waiter = self._expect(rid)
        await self._apply(out)
        snapshot: PresenceSnapshot = await waiter
        return snapshot

    async def close(self) -> None:
        """Close for good: unsubscribes nothing on the server side but ends every subscription's iteration."""
        await self._apply(self._core.close())
        await self._shutdown_tasks()

    async def wait_closed(self) -> None:
        """Wait until the client is closed (by the app, or for good after 4003 / a refused token)."""
        await self._stopped.wait()

    # driving the core

    def _check_started(self) -> None:
        if self._runner is None and self._core.state is ClientState.DISCONNECTED:
            raise HeraldClientError("call connect() first")

    def _note_state(self, old: ClientState, new: ClientState) -> None:
        if new is ClientState.CONNECTED:
            self.connections += 1
        self._changed.set()

    def _expect(self, rid: int) -> asyncio.Future[Any]:
        waiter: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiters[rid] = waiter
        return waiter

    async def _apply(self, outputs: list[Output]) -> None:
        for out in outputs:
            if isinstance(out, Deliver):
                sub = self._subs.get(out.pattern)
                if sub is None:
                    continue
                if sub._full():
                    self._core.pause_reading(True, time.monotonic())
                    await sub._deliver(out.message)
                    self._core.pause_reading(False, time.monotonic())
                else:
                    await sub._deliver(out.message)
            elif isinstance(out, Send):
                await self._send(out.text)
            elif isinstance(out, Resolve | Reject):
                self._settle(out)
            elif isinstance(out, Ended):
                ended = self._subs.pop(out.pattern, None)
                if ended is not None:
                    ended._finish(out.error)
            elif isinstance(out, GapFound):
                gapped = self._subs.get(out.gap.pattern)
                if gapped is not None:
                    gapped._gap(out.gap)
            elif isinstance(out, Presence):
                target = self._subs.get(out.pattern)
                if target is not None:
                    target._presence_event(out.event)
            elif isinstance(out, Abort):
                log.info("dropping the connection: %s", out.reason)
                if self._ws is not None and self._ws.transport is not None:
                    self._ws.transport.abort()
            elif isinstance(out, CloseSocket):
                if self._ws is not None:
                    with contextlib.suppress(Exception):
                        await self._ws.close(1000, "client closed")
            elif isinstance(out, FetchToken):
                self._spawn(self._refresh_token())
            elif isinstance(out, ReconnectIn):
                self._reconnect_delay = out.delay
            elif isinstance(out, Stopped):
                self._stopped.set()
                self._wake.set()
            elif isinstance(out, Notice):
                if self._on_notice is not None:
                    try:
                        self._on_notice(out.code, out.message)
                    except Exception:
                        log.exception("on_notice callback failed")
                else:
                    log.info("gateway notice %s: %s", out.code, out.message)
        deadline = self._core.deadline
        if deadline is not None and (self._timer_at is None or deadline < self._timer_at):
            self._wake.set()

    def _settle(self, out: Resolve | Reject) -> None:
        waiter = self._waiters.pop(out.request_id, None)
        if waiter is None or waiter.done():
            return
        if isinstance(out, Resolve):
            waiter.set_result(out.value)
        else:
            waiter.set_exception(out.error)

    async def _send(self, text: str) -> None:
        ws = self._ws
        if ws is None:
            return
        # A closed socket is noticed by the reader, which reconnects.
        with contextlib.suppress(ConnectionClosed):
            await ws.send(text)

    def _spawn(self, coro: Any) -> None:
        task: asyncio.Task[None] = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _get_token(self) -> str:
        if isinstance(self._token, str):
            return self._token
        token = await self._token()
        if not isinstance(token, str):
            raise TypeError("the token callback must return a str")
        return token

    async def _refresh_token(self) -> None:
        try:
            token = await self._get_token()
        except Exception as exc:
            log.warning("token callback failed: %r", exc)
            await self._apply(self._core.on_token_failed(time.monotonic()))
            return
        await self._apply(self._core.on_fresh_token(token, time.time(), time.monotonic()))

    def _closed(self) -> bool:
        return self._core.state is ClientState.CLOSED

    async def _run(self) -> None:
        while not self._closed():
            try:
                await self._one_connection()
            except Exception:
                # A bug must not leave the client silently dead: count it as a lost socket.
                log.exception("the connection failed unexpectedly")
                self._ws = None
                await self._apply(self._core.on_closed(None, time.monotonic()))
            if self._closed():
                return
            delay, self._reconnect_delay = self._reconnect_delay or 0.0, None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopped.wait(), delay)
            if self._closed():
                return
            self._core.start()

    async def _one_connection(self) -> None:
        try:
            token = await self._get_token()
            ws = await connect(
                self.url,
                ping_interval=None,  # liveness is the core's app-level ping
                ping_timeout=None,
                compression=None,
                open_timeout=self._open_timeout,
                close_timeout=2,
                max_size=None,
                proxy=None,
            )
        except (OSError, InvalidHandshake, InvalidURI, TimeoutError, TypeError, HeraldClientError) as exc:
            log.info("connecting to %s failed: %r", self.url, exc)
            limited = isinstance(exc, InvalidStatus) and exc.response.status_code == HTTPStatus.TOO_MANY_REQUESTS
            await self._apply(self._core.on_connect_failed(time.monotonic(), limited=limited))
            return
        except Exception as exc:  # a token callback may raise anything; retry it with backoff
            log.warning("token callback failed: %r", exc)
            await self._apply(self._core.on_connect_failed(time.monotonic()))
            return
        self._ws = ws
        code: int | None = None
        try:
            await self._apply(self._core.on_open(token, time.monotonic(), time.time()))
            async for raw in ws:
                await self._apply(self._core.on_frame(raw, time.monotonic()))
        except ConnectionClosed:
            pass
        finally:
            code = None if ws.close_code is None else int(ws.close_code)
            self._ws = None
            if self.state is not ClientState.CLOSED:
                ws.transport.abort()
        await self._apply(self._core.on_closed(code, time.monotonic()))

    async def _run_timers(self) -> None:
        while self.state is not ClientState.CLOSED:
            deadline = self._core.deadline
            self._timer_at = deadline
            self._wake.clear()
            timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)
            self._timer_at = None
            try:
                await self._apply(self._core.on_timer(time.monotonic()))
            except Exception:
                log.exception("a timer step failed")

    async def _shutdown_tasks(self) -> None:
        current = asyncio.current_task()
        for task in (self._runner, self._timers, *self._tasks):
            if task is not None and task is not current and not task.done():
                task.cancel()
        for task in (self._runner, self._timers, *list(self._tasks)):
            if task is not None and task is not current:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
