"""Connecting to NATS the same way in every service: reconnect forever, log transitions."""

from __future__ import annotations

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
