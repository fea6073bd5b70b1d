"""Turning ``HERALD_DATABASE_URL`` into an async SQLAlchemy engine."""

from __future__ import annotations

import os
import sqlite3
import time
from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from herald_common.config import ConfigError, Settings

SQLITE_BUSY_TIMEOUT_MS = 10_000
#: Execution option of a connection whose transactions only read (SQLite: plain BEGIN).
READ_ONLY_OPTION = "herald_read_only"


def async_url(settings: Settings) -> str:
    """The SQLAlchemy async URL for the configured database.

    Empty means SQLite in ``DATA_DIR/herald.db``; ``sqlite:///PATH`` and
    ``postgresql://…`` (or ``postgres://…``) map to the aiosqlite and asyncpg drivers.
    Raises :class:`ConfigError` for anything else.
    """
    raw = settings.database_url.strip()
    if not raw:
        return "sqlite+aiosqlite:///" + os.path.abspath(settings.sqlite_default_path())
    scheme, sep, rest = raw.partition("://")
    if not sep:
        raise ConfigError(f"HERALD_DATABASE_URL={raw!r} is not a URL (sqlite:///PATH or postgresql://…)")
    base = scheme.split("+", 1)[0].lower()
    if base == "sqlite":
        return "sqlite+aiosqlite://" + rest
    if base in ("postgresql", "postgres"):
        return "postgresql+asyncpg://" + rest
    raise ConfigError(f"HERALD_DATABASE_URL scheme {scheme!r} is not supported (use sqlite or postgresql)")


def _prepare_sqlite_file(url: str) -> None:
    database = make_url(url).database
    if database and database != ":memory:" and not database.startswith("file:"):
        folder = os.path.dirname(os.path.abspath(database))
        os.makedirs(folder, exist_ok=True)


def _enable_wal(cursor: Any) -> None:
    # WAL is stored in the file, so only the very first connections switch it. SQLite does
    # not call the busy handler for that switch, so processes racing to create the same
    # file retry here briefly (this blocks the loop only in that start-up race).
    for _ in range(100):
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            time.sleep(0.05)
    cursor.execute("PRAGMA journal_mode=WAL")


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy's "begin" hook issue BEGIN itself (see _sqlite_on_begin).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    # busy_timeout first: switching to WAL needs a lock another process may hold.
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    _enable_wal(cursor)
    cursor.execute("PRAGMA foreign_keys=ON")
    # FULL: a commit is on disk before the api answers 201, even across a power loss
    # (NORMAL in WAL mode would only survive a crash of the process).
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.close()


def _sqlite_on_begin(connection: Any) -> None:
    # IMMEDIATE takes the write lock up front: two writers then queue on busy_timeout
    # instead of failing with "database is locked" when a read lock would need upgrading,
    # and DDL in migrations is really transactional. Read-only transactions take no lock
    # (WAL readers see the last commit), so reads never wait behind a writer's fsync.
    if connection.get_execution_options().get(READ_ONLY_OPTION):
        connection.exec_driver_sql("BEGIN")
    else:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def watch_sqlite_engine(engine: Engine) -> None:
    """Set up every connection of ``engine`` (sync, or an async engine's ``sync_engine``)
    the Herald way: WAL, ``synchronous=FULL``, busy timeout, and BEGIN as above."""
    event.listen(engine, "connect", _sqlite_on_connect)
    event.listen(engine, "begin", _sqlite_on_begin)


def sqlite_sync_url(url: URL) -> URL:
    """The stdlib-driver URL of the same SQLite database, for :mod:`.sqlitewriter`."""
    return url.set(drivername="sqlite+pysqlite", query={**url.query, "timeout": str(SQLITE_BUSY_TIMEOUT_MS / 1000)})


def create_engine(settings: Settings) -> AsyncEngine:
    url = async_url(settings)
    if url.startswith("sqlite"):
        _prepare_sqlite_file(url)
        engine = create_async_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
        watch_sqlite_engine(engine.sync_engine)
        return engine
    return create_async_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10)
