"""Connecting to NATS the same way in every service: reconnect forever, log transitions."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

import nats
from nats.aio.client import Client

from herald_common.config import Settings

log = logging.getLogger(__name__)


class _QuietErrors:
    """Logs a NATS error once, then the same error again only every ``interval`` seconds.

    While NATS is away, nats-py reports the failed attempt every reconnect; one line per
    outage (and a reminder now and then) is what an operator wants to read.
    """

    def __init__(self, name: str, interval: float = 30.0) -> None:
        self._name = name
        self._interval = interval
        self._last: dict[str, float] = {}

    async def report(self, exc: Exception) -> None:
        text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        now = time.monotonic()
        if now - self._last.get(text, -self._interval) >= self._interval:
            self._last[text] = now
            log.warning("nats error: %s", text, extra={"service": self._name})

    def clear(self) -> None:
        self._last.clear()


async def connect(
    settings: Settings,
    name: str,
    *,
    on_reconnected: Callable[[], Awaitable[None]] | None = None,
) -> Client:
    """Connect with unlimited reconnects.

    nats-py keeps retrying the first connection too while reconnects are unlimited, so this
    returns only once connected; use :func:`connect_until` to give up when stopping.
    """
    errors = _QuietErrors(name)

    async def disconnected() -> None:
        log.warning("nats disconnected", extra={"service": name})

    async def reconnected() -> None:
        errors.clear()
        log.info("nats reconnected", extra={"service": name})
        if on_reconnected is not None:
            await on_reconnected()

    servers = [url.strip() for url in settings.nats_url.split(",") if url.strip()]
    return await nats.connect(
        servers=servers,
        name=f"herald-{name}",
        connect_timeout=max(1, int(settings.nats_connect_timeout)),
        allow_reconnect=True,
        max_reconnect_attempts=-1,
        reconnect_time_wait=0.5,
        disconnected_cb=disconnected,
        reconnected_cb=reconnected,
        error_cb=errors.report,
    )


async def connect_until(
    settings: Settings,
    name: str,
    stop: asyncio.Event,
    *,
    on_reconnected: Callable[[], Awaitable[None]] | None = None,
) -> Client | None:
    """Like :func:`connect`, but gives up and returns ``None`` when ``stop`` is set first.

    Services start even when NATS is not up yet and keep trying; SIGTERM still stops them.
    """
    attempt = asyncio.ensure_future(connect(settings, name, on_reconnected=on_reconnected))
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({attempt, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
    if attempt.done():
        return attempt.result()
    attempt.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await attempt
    return None
