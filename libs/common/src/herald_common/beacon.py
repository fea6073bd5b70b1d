"""A process's heartbeat for operators (:mod:`herald_common.nodes`), sent on its own NATS connection."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from herald_common import nodes

log = logging.getLogger(__name__)

#: ``Beat`` fields a service adds to its beats (``gateway``, ``role``, ``storage``).
Extras = Callable[[], Awaitable[dict[str, Any]]]


async def _no_extras() -> dict[str, Any]:
    return {}


def herald_version() -> str:
    """The installed version of Herald (its common library's), or ``unknown``."""
    try:
        return importlib.metadata.version("herald-common")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


class Beacon:
    """Beats every ``interval`` seconds from :meth:`attach` until :meth:`close`, which says bye."""

    def __init__(
        self, service: nodes.Service, interval: float, extras: Extras | None = None, node_id: str | None = None
    ) -> None:
        self.id = node_id or uuid.uuid4().hex[:16]
        self.service: nodes.Service = service
        self._interval = interval
        self._extras = extras or _no_extras
        self._started = time.time()
        self._host = socket.gethostname()
        self._version = herald_version()
        self._nc: Client | None = None
        self._task: asyncio.Task[None] | None = None
        self._hello: Subscription | None = None
        self._wake = asyncio.Event()

    async def beat(self) -> nodes.Beat:
        """The beat this process would send now."""
        nc = self._nc
        server = ""
        reconnects = 0
        if nc is not None:
            url = nc.connected_url
            server = f"{url.hostname}:{url.port}" if url is not None else ""
            reconnects = int(nc.stats.get("reconnects", 0))
        return nodes.Beat(
            id=self.id,
            service=self.service,
            version=self._version,
            host=self._host,
            pid=os.getpid(),
            started=self._started,
            sent=time.time(),
            nats_server=server,
            nats_reconnects=reconnects,
            **(await self._extras()),
        )

    async def attach(self, nc: Client) -> None:
        """Start beating on ``nc`` (the first beat goes out at once)."""
        self._nc = nc
        self._hello = await nc.subscribe(nodes.HELLO_SUBJECT, cb=self._on_hello)
        self._task = asyncio.create_task(self._run(), name="node-beacon")

    async def _on_hello(self, _: Msg) -> None:
        self._wake.set()

    async def _send(self) -> None:
        nc = self._nc
        if nc is None or not nc.is_connected:
            return
        try:
            await nc.publish(nodes.beat_subject(self.service, self.id), nodes.encoder.encode(await self.beat()))
        except Exception as exc:  # a connection lost meanwhile: the next beat tries again
            log.debug("node beat not sent: %s", type(exc).__name__)

    async def _run(self) -> None:
        while True:
            await self._send()
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._interval)

    async def close(self) -> None:
        """Stop beating and tell the api this process is gone (before the connection drains)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        nc = self._nc
        if nc is None or not nc.is_connected:
            return
        with contextlib.suppress(Exception):
            if self._hello is not None:
                await self._hello.unsubscribe()
            await nc.publish(nodes.bye_subject(self.service, self.id), nodes.encoder.encode(nodes.Bye(id=self.id)))
            await nc.flush(timeout=1)
