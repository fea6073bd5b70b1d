"""Connecting to NATS the same way in every service: reconnect forever, log transitions.

Each service connects with its own credentials (``HERALD_NATS_USER``/``_PASSWORD`` or
``HERALD_NATS_CREDS``) and, with ``HERALD_NATS_TLS_CA``, over TLS only (a client
certificate too with ``HERALD_NATS_TLS_CERT``/``_KEY``). Its reply subjects start with
:func:`inbox_prefix`, so the NATS permissions can give each service its own inbox and no
service can read another's replies (``deploy/k8s/base/nats-auth.conf``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections.abc import Awaitable, Callable
from typing import Any

from nats.aio.client import Client

from herald_common.config import ConfigError, Settings
from herald_common.natsclient import HeraldNatsClient

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
            log.warning("nats error: %s", text)

    def clear(self) -> None:
        self._last.clear()


def inbox_prefix(name: str) -> str:
    """The prefix of the reply subjects of service ``name`` (``_INBOX.<name>``)."""
    return f"_INBOX.{name}"


def tls_context(settings: Settings) -> ssl.SSLContext | None:
    """The TLS context for NATS from the ``HERALD_NATS_TLS_*`` settings, or None without a CA.

    Raises :class:`ConfigError` naming the setting when a file cannot be read.
    """
    if not settings.nats_tls_ca:
        return None
    try:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=settings.nats_tls_ca)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"HERALD_NATS_TLS_CA={settings.nats_tls_ca!r} cannot be used: {exc}") from None
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if settings.nats_tls_cert:
        try:
            context.load_cert_chain(settings.nats_tls_cert, settings.nats_tls_key)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(
                f"HERALD_NATS_TLS_CERT={settings.nats_tls_cert!r} / HERALD_NATS_TLS_KEY cannot be used: {exc}"
            ) from None
    return context


def connect_options(settings: Settings, name: str) -> dict[str, Any]:
    """The credential, TLS and inbox options of ``nats.connect`` for service ``name``."""
    options: dict[str, Any] = {"inbox_prefix": inbox_prefix(name)}
    if settings.nats_user:
        options["user"] = settings.nats_user
        options["password"] = settings.nats_password
    if settings.nats_creds:
        options["user_credentials"] = settings.nats_creds
    context = tls_context(settings)
    if context is not None:
        options["tls"] = context
    return options


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
    options = connect_options(settings, name)
    # Half a second between attempts (nats-py's annotation says int; it takes any number).
    options["reconnect_time_wait"] = 0.5
    nc = HeraldNatsClient()

    async def disconnected() -> None:
        # nats-py reports its own close (a clean stop, after drain) as a disconnection too.
        if nc.is_closed or nc.is_draining:
            log.debug("nats connection closed")
        else:
            log.warning("nats disconnected")

    async def reconnected() -> None:
        errors.clear()
        log.info("nats reconnected")
        if on_reconnected is not None:
            await on_reconnected()

    servers = [url.strip() for url in settings.nats_url.split(",") if url.strip()]
    await nc.connect(
        servers=servers,
        name=f"herald-{name}",
        connect_timeout=max(1, int(settings.nats_connect_timeout)),
        allow_reconnect=True,
        max_reconnect_attempts=-1,
        disconnected_cb=disconnected,
        reconnected_cb=reconnected,
        error_cb=errors.report,
        **options,
    )
    return nc


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
