"""Serving the app with uvicorn inside Herald's own event loop and signal handling."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Generator

import uvicorn

from herald_api.app import create_app
from herald_api.fastpath import ProducerRoutes, producer_routes
from herald_api.httphead import bounded_head_protocol
from herald_common.config import Settings
from herald_common.runtime import tune_gc

log = logging.getLogger(__name__)


class _Server(uvicorn.Server):
    """uvicorn without its signal handlers: ``run_service`` owns SIGTERM/SIGINT and sets
    the stop event, which we turn into ``should_exit``. uvicorn's own handlers would
    replace ours and re-raise the signal after shutdown, killing the process."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def _shared_socket(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


async def serve(settings: Settings, stop: asyncio.Event) -> None:
    """Serve until ``stop`` is set, then shut down gracefully and return."""
    app = create_app(settings)
    config = uvicorn.Config(
        producer_routes(app),
        host=settings.api_host,
        port=settings.api_port,
        http=bounded_head_protocol(settings.api_max_header_bytes, ProducerRoutes(app)),
        loop="none",
        lifespan="on",
        log_config=None,
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=max(1, int(settings.shutdown_grace)),
    )
    server = _Server(config)
    tune_gc()
    # Several api processes share one port when told so (HERALD_API_WORKERS): the socket is
    # bound here with SO_REUSEPORT, since uvicorn's own binding does not set it.
    sockets = [_shared_socket(settings.api_host, settings.api_port)] if settings.api_reuse_port else None
    serving = asyncio.create_task(server.serve(sockets=sockets), name="uvicorn")
    stopping = asyncio.create_task(stop.wait(), name="stop")
    await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
    server.should_exit = True
    stopping.cancel()
    await serving
    if not server.started and not stop.is_set():
        raise SystemExit(1)
