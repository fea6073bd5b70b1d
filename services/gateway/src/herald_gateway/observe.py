"""Trace, latency and log bits of the gateway, kept off the live path unless they are wanted.

Log lines name the user, the client address and the close or error code; never a token or
a message's content (error messages the session writes name only frame types, limits and
topic patterns).

The shell checks ``telemetry.tracing_enabled`` before calling :meth:`FanOutTrace.start`, so
with tracing off no header is read and no span object exists. One span covers the fan-out
of one message to all local holders of one pattern: the recipient count is an attribute,
never a span per recipient.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING

import msgspec
from opentelemetry.trace import Span, SpanKind

from herald_common import telemetry
from herald_common.errors import CloseCode

if TYPE_CHECKING:
    from herald_gateway.connection import ClientConnection

_tracer = telemetry.tracer("herald_gateway")
log = logging.getLogger("herald.gateway")

#: Closes that are business as usual, logged at debug level only (one per connection
#: would flood the log): a client leaving, the server stopping, a socket just dropped.
ROUTINE_CLOSES = frozenset({int(CloseCode.NORMAL), 1001, 1005, 1006})

#: How every error frame starts (``wire.Error`` is tagged on ``type``, encoded first).
ERROR_PREFIX = b'{"type":"error"'


class _ErrorCode(msgspec.Struct):
    code: str = "unknown"
    message: str = ""


_error_decoder = msgspec.json.Decoder(_ErrorCode)


def error_code(frame: bytes) -> str:
    """The ``code`` of an encoded error frame."""
    try:
        return _error_decoder.decode(frame).code
    except msgspec.DecodeError:
        return "unknown"


def log_refusal(conn: ClientConnection, frame: bytes) -> None:
    """One line for an error frame sent to a client: a refused auth, subscribe or publish."""
    try:
        error = _error_decoder.decode(frame)
    except msgspec.DecodeError:
        error = _ErrorCode()
    log.info(
        "frame refused",
        extra={
            "user": conn.session.user_id,
            "client_ip": conn.client_ip,
            "code": error.code,
            "reason": error.message[:200],
        },
    )


def log_close(conn: ClientConnection, code: int | None, opened: float) -> None:
    """One line for a closed connection; at debug level unless the close says something.

    The client's close reason is not logged: it is text of the client's choosing."""
    level = logging.DEBUG if code is None or code in ROUTINE_CLOSES else logging.INFO
    if log.isEnabledFor(level):
        log.log(
            level,
            "connection closed",
            extra={
                "user": conn.session.user_id,
                "client_ip": conn.client_ip,
                "code": code,
                "duration_ms": round((time.monotonic() - opened) * 1000),
            },
        )


def stored_at(headers: Mapping[str, str]) -> float | None:
    """When JetStream stored a republished message (``Nats-Time-Stamp``), as a Unix time."""
    stamp = headers.get("Nats-Time-Stamp")
    if not stamp or len(stamp) < 20:
        return None
    try:
        # RFC 3339 with up to nanoseconds, always UTC ("...Z"): whole seconds, then the fraction.
        whole = _whole_seconds(stamp[:19])
        fraction = stamp[19:].rstrip("Z")
        return whole + (float("0" + fraction) if fraction.startswith(".") else 0.0)
    except ValueError:
        return None


@functools.lru_cache(maxsize=16)
def _whole_seconds(prefix: str) -> float:
    """``YYYY-MM-DDTHH:MM:SS`` (UTC) as a Unix time; remembered, as the messages of one
    second share it and parsing it was most of the cost of the gateway's latency metric."""
    return dt.datetime.fromisoformat(prefix).replace(tzinfo=dt.UTC).timestamp()


class FanOutTrace:
    """The span of one message's fan-out on this gateway."""

    __slots__ = ("_span",)

    def __init__(self, span: Span) -> None:
        self._span = span

    @classmethod
    def start(cls, pattern: str, subject: str, offset: int, headers: Mapping[str, str] | None) -> FanOutTrace | None:
        """Start the span as a child of the context in ``headers``; None when they carry none
        (messages fetched from history), so such deliveries do not start traces of their own."""
        if not headers or "traceparent" not in headers:
            return None
        span = _tracer.start_span(
            f"fan-out {subject}",
            context=telemetry.extract(headers),
            kind=SpanKind.CONSUMER,
            attributes={
                "messaging.system": "nats",
                "messaging.operation.type": "process",
                "messaging.destination.name": subject,
                "herald.pattern": pattern,
                "herald.offset": offset,
            },
        )
        return cls(span)

    def end(self, recipients: int) -> None:
        self._span.set_attribute("herald.recipients", recipients)
        self._span.end()
