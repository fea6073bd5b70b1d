"""The api's NATS connection, made in the background so the api serves while NATS is away."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from nats.aio.client import Client
from nats.js import JetStreamContext

from herald_common.config import Settings
from herald_common.errors import ErrorCode, HeraldError
from herald_common.natsconn import connect
from herald_common.streams import ensure_streams

log = logging.getLogger(__name__)

OnConnected = Callable[[Client], Awaitable[None]]


class NatsLink:
    """Connects (retrying forever), declares the streams, then runs ``on_connected`` hooks.

    nats-py reconnects by itself after the first connection; :attr:`connected` follows it.
    """

    def __init__(self, settings: Settings, *, name: str = "api") -> None:
        self._settings = settings
        self._name = name
        self._client: Client | None = None
        self._jetstream: JetStreamContext | None = None
        self._task: asyncio.Task[None] | None = None
        self._on_connected: list[OnConnected] = []
        self._on_reconnected: list[Callable[[], None]] = []
        self._streams_lock = asyncio.Lock()
        self._streams_declared = False

    def add_connected_hook(self, hook: OnConnected) -> None:
        self._on_connected.append(hook)

    def add_reconnected_hook(self, hook: Callable[[], None]) -> None:
        self._on_reconnected.append(hook)

    @property
    def connected(self) -> bool:
        return self._client is not None and self._client.is_connected

    @property
    def ready(self) -> bool:
        """Connected, and Herald's streams were declared on this connection's server."""
        return self._streams_declared and self.connected

    def client(self) -> Client:
        """The NATS connection; raises ``unavailable`` before the first connection."""
        if self._client is None:
            raise HeraldError(ErrorCode.UNAVAILABLE, "not connected to NATS yet")
        return self._client

    def jetstream(self) -> JetStreamContext:
        """The JetStream context (one per connection: its ``publish_async`` replies come
        in on one subscription); raises ``unavailable`` before the first connection."""
        if self._client is None:
            raise HeraldError(ErrorCode.UNAVAILABLE, "not connected to NATS yet")
        if self._jetstream is None:
            self._jetstream = self._client.jetstream()
        return self._jetstream

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="nats-link")

    async def ensure_streams(self) -> None:
        """Declare Herald's streams (again), e.g. after a server lost its store."""
        async with self._streams_lock:
            await ensure_streams(self.jetstream(), self._settings)

    async def _reconnected(self) -> None:
        for hook in self._on_reconnected:
            hook()

    async def _run(self) -> None:
        # nats-py retries the first connection forever when reconnects are unlimited.
        client = await connect(self._settings, self._name, on_reconnected=self._reconnected)
        self._client = client
        log.info("connected to nats")
        delay = 0.2
        while True:
            try:
                await self.ensure_streams()
                self._streams_declared = True
                break
            except Exception as exc:  # JetStream not ready, timeouts, server restarting
                log.warning("cannot declare streams yet: %s", exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
        for hook in self._on_connected:
            try:
                await hook(client)
            except Exception:
                log.exception("nats connected hook failed")
        for reconnected in self._on_reconnected:
            reconnected()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        if self._client is not None and not self._client.is_closed:
            try:
                await asyncio.wait_for(self._client.drain(), timeout=self._settings.shutdown_grace)
            except Exception:
                with contextlib.suppress(Exception):
                    await self._client.close()
