"""Structured JSON logging, one line per event on stderr, every line the same shape.

Each line is a JSON object with ``ts``, ``level``, ``service``, ``logger`` and ``msg``,
then the event's own facts (``user``, ``client_ip``, ``code``, ``route``, ``status``,
``duration_ms``, ...) as plain JSON values. A line written inside a recorded span carries
its ``trace_id`` and ``span_id`` (hex, as trace back-ends show them), so logs and traces
of one message can be joined.

Libraries are held to what an operator needs: nothing below ``info`` from any of them,
nothing below ``warning`` from websockets (whose per-connection lines the gateway replaces
with its own, carrying the user, address and close code).
"""

from __future__ import annotations

import datetime as dt
import logging
import sys
from typing import Any

import msgspec

from herald_common.telemetry import current_ids

_STANDARD = frozenset(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}
#: Extras libraries attach that are no facts: uvicorn's ANSI-coloured copy of the message,
#: websockets' connection object (it would print as ``<weakproxy at 0x…>``).
_DROPPED = frozenset({"color_message", "websocket"})
_encoder = msgspec.json.Encoder()

#: Loggers of libraries and the lowest level let through from them.
LIBRARY_LEVELS = {"websockets": logging.WARNING, "uvicorn": logging.INFO, "nats": logging.INFO}


_OPAQUE = object()


def _plain(value: Any) -> Any:
    """``value`` as a JSON value, or ``_OPAQUE`` for an object without a plain form."""
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    if isinstance(value, list | tuple | set | frozenset):
        return [v for v in map(_plain, value) if v is not _OPAQUE]
    return _OPAQUE


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str = "") -> None:
        super().__init__()
        self._service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "service": getattr(record, "service", None) or self._service,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key in _STANDARD or key in _DROPPED or key in entry or key.startswith("_"):
                continue
            plain = _plain(value)
            if plain is not _OPAQUE:
                entry[key] = plain
        ids = current_ids()
        if ids is not None:
            entry["trace_id"], entry["span_id"] = ids
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return _encoder.encode(entry).decode()


def _no_library_debug(record: logging.LogRecord) -> bool:
    # Libraries log data at debug level (aiosqlite: SQL parameters, websockets: frames),
    # which would put message content and tokens in the log: only Herald's own loggers
    # may write debug lines.
    return record.levelno > logging.DEBUG or record.name.startswith("herald")


def setup_logging(level: str, service: str) -> None:
    """Configure the root logger once per process.

    ``level`` applies to Herald's loggers; other libraries never log below ``info``
    (websockets below ``warning``). Every line names ``service``.
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service))
    handler.addFilter(_no_library_debug)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name, floor in LIBRARY_LEVELS.items():
        logging.getLogger(name).setLevel(max(floor, root.level))
    logging.getLogger("herald").info("starting")
