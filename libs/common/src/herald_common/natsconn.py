"""Connecting to NATS the same way in every service: reconnect forever, log transitions."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import nats
from nats.aio.client import Client

from herald_common.config import Settings

log = logging.getLogger(__name__)


async def connect(
    settings: Settings,
    name: str,
    *,
    on_reconnected: Callable[[], Awaitable[None]] | None = None,
) -> Client:
    """Connect with unlimited reconnects; raises if the first connection fails."""

    async def disconnected() -> None:
        log.warning("nats disconnected", extra={"service": name})

    async def reconnected() -> None:
        log.info("nats reconnected", extra={"service": name})
        if on_reconnected is not None:
            await on_reconnected()

    async def error(exc: Exception) -> None:
        log.warning("nats error: %s", exc, extra={"service": name})

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
        error_cb=error,
    )


async def connect_until(
    settings: Settings,
    name: str,
    stop: asyncio.Event,
    *,
    on_reconnected: Callable[[], Awaitable[None]] | None = None,
) -> Client | None:
    """Like :func:`connect`, but keeps trying until connected; ``None`` if ``stop`` is set first.

    Services start even when NATS is not up yet, and say so once instead of crashing.
    """
    delay = 0.25
    warned = False
    while not stop.is_set():
        try:
            return await connect(settings, name, on_reconnected=on_reconnected)
        except Exception as exc:  # nats-py raises several unrelated types for "not reachable"
            if not warned:
                log.warning("nats not reachable at %s (%s); retrying", settings.nats_url, exc, extra={"service": name})
                warned = True
        try:
            await asyncio.wait_for(stop.wait(), delay)
        except TimeoutError:
            delay = min(delay * 2, 2.0)
    return None
