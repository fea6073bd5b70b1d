"""Running a service: one event loop (uvloop when present), stop on SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Callable, Coroutine
from typing import Any

from herald_common.config import DEV_JWT_SECRET, ConfigError, Settings, load_settings
from herald_common.logs import setup_logging
from herald_common.telemetry import setup_tracing, shutdown_tracing

log = logging.getLogger("herald")


def install_stop_signals(stop: asyncio.Event) -> None:
    """Set ``stop`` on SIGTERM or SIGINT (a second signal still only sets it)."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)


def run_service(name: str, main: Callable[[Settings, asyncio.Event], Coroutine[Any, Any, None]]) -> int:
    """Load settings, set up logging, run ``main(settings, stop)`` until it returns.

    Returns the process exit code: 0 after a clean stop, 2 for bad configuration.
    """
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"herald {name}: configuration error: {exc}", file=sys.stderr)
        return 2
    setup_logging(settings.log_level, name)
    try:
        setup_tracing(name)
    except ConfigError as exc:
        print(f"herald {name}: configuration error: {exc}", file=sys.stderr)
        return 2
    if settings.jwt_secret == DEV_JWT_SECRET:
        log.warning("HERALD_JWT_SECRET is the development default; set it in production")

    async def runner() -> None:
        stop = asyncio.Event()
        install_stop_signals(stop)
        await main(settings, stop)

    try:
        import uvloop

        uvloop.run(runner())
    except ImportError:  # pragma: no cover - uvloop is a dependency on every supported platform
        asyncio.run(runner())
    finally:
        shutdown_tracing()
    log.info("stopped", extra={"service": name})
    return 0
