"""One gateway process: health endpoint, NATS connection and WebSocket listener.

:func:`run` starts them in that order and stops them in reverse: clients are closed with
1001 before NATS is drained.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from websockets.asyncio.server import Server, serve

from herald_common.config import Settings
from herald_common.health import HealthServer
from herald_common.natsconn import connect_until
from herald_common.runtime import tune_gc
from herald_gateway.connection import Socket
from herald_gateway.server import Gateway

log = logging.getLogger("herald.gateway")

LISTEN_BACKLOG = 4096


async def run(settings: Settings, stop: asyncio.Event) -> None:
    """Serve until ``stop`` is set, then close every client with 1001 and drain NATS."""
    gateway = Gateway(settings)
    health: HealthServer | None = None
    if settings.gateway_metrics_port:
        health = HealthServer(gateway.metrics, lambda: gateway.ready)
        await health.start(settings.gateway_host, settings.gateway_metrics_port)

    nc = await connect_until(settings, "gateway", stop, on_reconnected=gateway.nats.on_reconnected)
    if nc is None:
        if health is not None:
            await health.close()
        return
    server: Server | None = None
    pinger: asyncio.Task[None] | None = None
    try:
        await gateway.nats.attach(nc)
        await gateway.presence.attach(nc)
        await gateway.operator.attach(nc)
        await gateway.beacon.attach(nc)
        tune_gc()
        server = await serve(
            gateway.handler,
            settings.gateway_host,
            settings.gateway_port,
            process_request=gateway.process_request,
            create_connection=Socket,
            compression=None,
            max_size=settings.max_frame_bytes,
            # Keepalive pings come from one gateway-wide task (keepalive.py), not a task
            # per connection.
            ping_interval=None,
            ping_timeout=None,
            close_timeout=min(2.0, settings.shutdown_grace),
            # Clients send small control frames: a short incoming queue is plenty, and
            # outgoing frames bypass websockets' writes (see connection.py).
            max_queue=4,
            reuse_port=settings.gateway_reuse_port or None,
            # asyncio's default of 100 overflows under a burst of connects (each dropped
            # SYN costs the client a 1 s retransmit); the kernel caps it at somaxconn.
            backlog=LISTEN_BACKLOG,
        )
        gateway.listening = True
        pinger = asyncio.create_task(gateway.keepalive.run(), name="keepalive") if gateway.keepalive else None
        log.info(
            "gateway listening",
            extra={"host": settings.gateway_host, "port": settings.gateway_port, "path": settings.gateway_path},
        )
        await stop.wait()
    finally:
        gateway.listening = False
        if pinger is not None:
            pinger.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pinger
        if server is not None:
            server.close(code=1001, reason="server shutting down")
            try:
                await asyncio.wait_for(server.wait_closed(), settings.shutdown_grace)
            except TimeoutError:
                log.warning("some connections did not close in time")
        await gateway.close()
        if gateway.keepalive is not None:
            await gateway.keepalive.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(nc.drain(), settings.shutdown_grace)
        if health is not None:
            await health.close()
