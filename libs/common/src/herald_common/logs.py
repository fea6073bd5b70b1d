"""Structured JSON logging, one line per event on stderr.

A line written inside a recorded span carries its ``trace_id`` and ``span_id`` (hex, as
trace back-ends show them), so logs and traces of one message can be joined.
"""

from __future__ import annotations

import datetime as dt
import logging
import sys
from typing import Any

import msgspec

from herald_common.telemetry import current_ids

_STANDARD = frozenset(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}
_encoder = msgspec.json.Encoder()


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value if isinstance(value, str | int | float | bool | None) else repr(value)
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

    ``level`` applies to Herald's loggers; other libraries never log below ``info``.
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(_no_library_debug)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("herald").info("starting", extra={"service": service})
