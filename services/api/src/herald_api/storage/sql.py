"""The storage contract implemented with SQLAlchemy Core (SQLite and PostgreSQL).

Repositories talk to an :class:`Executor`. PostgreSQL transactions and SQLite read-only
transactions run each statement at once on the async engine; SQLite write transactions
go to the :class:`~herald_api.storage.sqlitewriter.SqliteWriter`, which defers writes
whose result is not needed so that many run in one thread hop.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, Protocol

from sqlalchemy import ColumnElement, Executable, and_, create_engine, delete, func, or_, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from herald_api.storage import migrations
from herald_api.storage.engine import READ_ONLY_OPTION, sqlite_sync_url, watch_sqlite_engine
from herald_api.storage.protocols import (
    Channel,
    Cursor,
    Member,
    Message,
    MessageFilter,
    OutboxEntry,
    Savepoint,
    now_us,
)
from herald_api.storage.sqlitewriter import SqliteWriter, WriterSession
from herald_api.storage.tables import channel_members, channels, messages, outbox

# Built once: SQLAlchemy then finds their compiled form in its cache without rebuilding a key.
_INSERT_MESSAGE = messages.insert()
_INSERT_OUTBOX = outbox.insert()


class Executor(Protocol):
    """Runs the statements of one transaction."""

    @property
    def dialect(self) -> str: ...

    async def rows(self, statement: Executable) -> list[Row[Any]]:
        """Run ``statement`` now; its rows."""
        ...

    async def rowcount(self, statement: Executable) -> int:
        """Run the write ``statement`` now; the number of rows it touched."""
        ...

    async def write(self, statement: Executable, params: Mapping[str, Any] | None = None) -> None:
        """Run the write ``statement``, now or before the next statement that returns something."""
        ...

    def savepoint(self) -> AbstractAsyncContextManager[Savepoint]: ...


def _refuse_write(read_only: bool) -> None:
    if read_only:
        raise RuntimeError("write in a read-only transaction")


class DirectExecutor:
    """Each statement at once on an async connection."""

    def __init__(self, conn: AsyncConnection, *, read_only: bool = False) -> None:
        self._conn = conn
        self._read_only = read_only

    @property
    def dialect(self) -> str:
        return self._conn.dialect.name

    async def rows(self, statement: Executable) -> list[Row[Any]]:
        return list((await self._conn.execute(statement)).all())

    async def rowcount(self, statement: Executable) -> int:
        _refuse_write(self._read_only)
        return (await self._conn.execute(statement)).rowcount

    async def write(self, statement: Executable, params: Mapping[str, Any] | None = None) -> None:
        _refuse_write(self._read_only)
        await self._conn.execute(statement, params)

    @asynccontextmanager
    async def savepoint(self) -> AsyncIterator[Savepoint]:
        async with self._conn.begin_nested():
            yield Savepoint()


class WriterExecutor:
    """A SQLite write transaction on the writer thread; writes are deferred."""

    def __init__(self, session: WriterSession) -> None:
        self._session = session

    @property
    def dialect(self) -> str:
        return "sqlite"

    async def rows(self, statement: Executable) -> list[Row[Any]]:
        return (await self._session.execute(statement)).rows

    async def rowcount(self, statement: Executable) -> int:
        return (await self._session.execute(statement)).rowcount

    async def write(self, statement: Executable, params: Mapping[str, Any] | None = None) -> None:
        self._session.defer(statement, params)

    def savepoint(self) -> AbstractAsyncContextManager[Savepoint]:
        return self._session.savepoint()


def _message(row: Row[Any]) -> Message:
    return Message(
        id=row.id,
        sender_id=row.sender_id,
        recipient_id=row.recipient_id,
        channel_id=row.channel_id,
        content=row.content,
        created_us=row.created_us,
    )


def _channel(row: Row[Any]) -> Channel:
    return Channel(id=row.id, name=row.name, owner_id=row.owner_id, created_us=row.created_us)


def _first(rows: list[Row[Any]]) -> Row[Any] | None:
    return rows[0] if rows else None


class SqlMessages:
    def __init__(self, db: Executor) -> None:
        self._db = db

    async def add(self, message: Message) -> None:
        await self._db.write(
            _INSERT_MESSAGE,
            {
                "id": message.id,
                "sender_id": message.sender_id,
                "recipient_id": message.recipient_id,
                "channel_id": message.channel_id,
                "content": message.content,
                "created_us": message.created_us,
            },
        )

    async def get(self, message_id: str) -> Message | None:
        row = _first(await self._db.rows(select(messages).where(messages.c.id == message_id)))
        return None if row is None else _message(row)

    async def set_content(self, message_id: str, content: str) -> None:
        await self._db.write(
            update(messages).where(messages.c.id == message_id).values(content=content, updated_us=now_us())
        )

    async def delete(self, message_id: str) -> None:
        await self._db.write(delete(messages).where(messages.c.id == message_id))

    async def page(self, where: MessageFilter, before: Cursor | None, limit: int) -> list[Message]:
        conditions: list[ColumnElement[bool]] = []
        if where.channel_id is not None:
            conditions.append(messages.c.channel_id == where.channel_id)
        if where.between is not None:
            me, other = where.between
            conditions.append(
                or_(
                    and_(messages.c.sender_id == me, messages.c.recipient_id == other),
                    and_(messages.c.sender_id == other, messages.c.recipient_id == me),
                )
            )
        if where.involving is not None:
            conditions.append(or_(messages.c.sender_id == where.involving, messages.c.recipient_id == where.involving))
        if before is not None:
            conditions.append(
                or_(
                    messages.c.created_us < before.created_us,
                    and_(messages.c.created_us == before.created_us, messages.c.id < before.message_id),
                )
            )
        query = (
            select(messages)
            .where(and_(*conditions))
            .order_by(messages.c.created_us.desc(), messages.c.id.desc())
            .limit(limit)
        )
        return [_message(row) for row in await self._db.rows(query)]


class SqlChannels:
    def __init__(self, db: Executor) -> None:
        self._db = db

    async def add(self, channel: Channel) -> None:
        await self._db.write(
            channels.insert().values(
                id=channel.id, name=channel.name, owner_id=channel.owner_id, created_us=channel.created_us
            )
        )

    async def get(self, channel_id: str) -> Channel | None:
        row = _first(await self._db.rows(select(channels).where(channels.c.id == channel_id)))
        return None if row is None else _channel(row)

    async def rename(self, channel_id: str, name: str) -> None:
        await self._db.write(update(channels).where(channels.c.id == channel_id).values(name=name))

    async def delete(self, channel_id: str) -> None:
        await self._db.write(delete(channel_members).where(channel_members.c.channel_id == channel_id))
        await self._db.write(delete(channels).where(channels.c.id == channel_id))

    async def list_all(self) -> list[Channel]:
        query = select(channels).order_by(channels.c.created_us, channels.c.id)
        return [_channel(row) for row in await self._db.rows(query)]

    async def list_for_member(self, user_id: str) -> list[Channel]:
        query = (
            select(channels)
            .join(channel_members, channel_members.c.channel_id == channels.c.id)
            .where(channel_members.c.user_id == user_id)
            .order_by(channels.c.created_us, channels.c.id)
        )
        return [_channel(row) for row in await self._db.rows(query)]

    async def add_member(self, member: Member) -> bool:
        values = {"channel_id": member.channel_id, "user_id": member.user_id, "added_us": member.added_us}
        insert = (
            postgresql.insert(channel_members) if self._db.dialect == "postgresql" else sqlite.insert(channel_members)
        )
        return bool(await self._db.rowcount(insert.values(**values).on_conflict_do_nothing()))

    async def remove_member(self, channel_id: str, user_id: str) -> bool:
        return bool(
            await self._db.rowcount(
                delete(channel_members).where(
                    channel_members.c.channel_id == channel_id, channel_members.c.user_id == user_id
                )
            )
        )

    async def is_member(self, channel_id: str, user_id: str) -> bool:
        query = select(channel_members.c.user_id).where(
            channel_members.c.channel_id == channel_id, channel_members.c.user_id == user_id
        )
        return bool(await self._db.rows(query))

    async def members(self, channel_id: str) -> list[Member]:
        query = (
            select(channel_members)
            .where(channel_members.c.channel_id == channel_id)
            .order_by(channel_members.c.added_us, channel_members.c.user_id)
        )
        return [
            Member(channel_id=row.channel_id, user_id=row.user_id, added_us=row.added_us)
            for row in await self._db.rows(query)
        ]


class SqlOutbox:
    def __init__(self, db: Executor) -> None:
        self._db = db

    async def add(self, event_id: str, subject: str, payload: bytes, trace_context: str | None = None) -> None:
        await self._db.write(
            _INSERT_OUTBOX,
            {
                "event_id": event_id,
                "subject": subject,
                "payload": payload.decode(),
                "created_us": now_us(),
                "trace_context": trace_context,
            },
        )

    async def pending(self, limit: int) -> list[OutboxEntry]:
        query = select(outbox).order_by(outbox.c.seq).limit(limit)
        return [
            OutboxEntry(
                seq=row.seq,
                event_id=row.event_id,
                subject=row.subject,
                payload=row.payload.encode(),
                trace_context=row.trace_context,
            )
            for row in await self._db.rows(query)
        ]

    async def remove(self, seqs: list[int]) -> None:
        if seqs:
            await self._db.write(delete(outbox).where(outbox.c.seq.in_(seqs)))

    async def count(self) -> int:
        return int((await self._db.rows(select(func.count()).select_from(outbox)))[0][0])


class SqlTransaction:
    def __init__(self, db: Executor) -> None:
        self._db = db
        self._messages = SqlMessages(db)
        self._channels = SqlChannels(db)
        self._outbox = SqlOutbox(db)

    @property
    def messages(self) -> SqlMessages:
        return self._messages

    @property
    def channels(self) -> SqlChannels:
        return self._channels

    def savepoint(self) -> AbstractAsyncContextManager[Savepoint]:
        return self._db.savepoint()

    @property
    def outbox(self) -> SqlOutbox:
        return self._outbox


@asynccontextmanager
async def _file_lock(database: str | None, name: str) -> AsyncIterator[bool]:
    if not database or database == ":memory:" or database.startswith("file:"):
        yield True  # one process has this database
        return
    fd = os.open(f"{database}.{name}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _lock_key(name: str) -> int:
    """A stable signed 64-bit advisory-lock key for ``name``."""
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big", signed=True)


class SqlStorage:
    """:class:`~herald_api.storage.protocols.Storage` on an async SQLAlchemy engine.

    With SQLite, write transactions run on a :class:`SqliteWriter` over the same file
    (SQLite has one writer at a time anyway); reads, migrations and :meth:`ping` use the
    async engine.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._writer: SqliteWriter | None = None
        if engine.dialect.name == "sqlite":
            sync_engine = create_engine(sqlite_sync_url(engine.url))
            watch_sqlite_engine(sync_engine)
            self._writer = SqliteWriter(sync_engine)

    @asynccontextmanager
    async def transaction(self, *, read_only: bool = False) -> AsyncIterator[SqlTransaction]:
        if self._writer is not None and not read_only:
            async with self._writer.transaction() as session:
                yield SqlTransaction(WriterExecutor(session))
            return
        async with self.engine.connect() as conn:
            if read_only:
                # SQLite: a plain BEGIN (see engine.py); PostgreSQL: READ ONLY.
                option = "postgresql_readonly" if conn.dialect.name == "postgresql" else READ_ONLY_OPTION
                await conn.execution_options(**{option: True})
            async with conn.begin():
                yield SqlTransaction(DirectExecutor(conn, read_only=read_only))

    @asynccontextmanager
    async def exclusive(self, name: str) -> AsyncIterator[bool]:
        """A lock on ``name`` shared by every process on this database, tried without waiting
        (True when this process holds it for the block): a session advisory lock on
        PostgreSQL, an ``flock`` on a file beside the database file on SQLite."""
        if self.engine.dialect.name == "sqlite":
            async with _file_lock(self.engine.url.database, name) as held:
                yield held
            return
        key = _lock_key(name)
        async with self.engine.connect() as conn:
            held = bool((await conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key})).scalar())
            await conn.commit()
            try:
                yield held
            finally:
                if held:
                    await conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                    await conn.commit()

    async def migrate(self) -> list[int]:
        return await migrations.migrate(self.engine)

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def close(self) -> None:
        if self._writer is not None:
            await self._writer.close()
        await self.engine.dispose()
