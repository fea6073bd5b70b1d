"""The storage contract implemented with SQLAlchemy Core (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import ColumnElement, and_, delete, func, or_, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from herald_api.storage import migrations
from herald_api.storage.protocols import (
    Channel,
    Cursor,
    Member,
    Message,
    MessageFilter,
    OutboxEntry,
    now_us,
)
from herald_api.storage.tables import channel_members, channels, messages, outbox


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


class SqlMessages:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def add(self, message: Message) -> None:
        await self._conn.execute(
            messages.insert().values(
                id=message.id,
                sender_id=message.sender_id,
                recipient_id=message.recipient_id,
                channel_id=message.channel_id,
                content=message.content,
                created_us=message.created_us,
            )
        )

    async def get(self, message_id: str) -> Message | None:
        row = (await self._conn.execute(select(messages).where(messages.c.id == message_id))).first()
        return None if row is None else _message(row)

    async def set_content(self, message_id: str, content: str) -> None:
        await self._conn.execute(
            update(messages).where(messages.c.id == message_id).values(content=content, updated_us=now_us())
        )

    async def delete(self, message_id: str) -> None:
        await self._conn.execute(delete(messages).where(messages.c.id == message_id))

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
        return [_message(row) for row in await self._conn.execute(query)]


class SqlChannels:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def add(self, channel: Channel) -> None:
        await self._conn.execute(
            channels.insert().values(
                id=channel.id, name=channel.name, owner_id=channel.owner_id, created_us=channel.created_us
            )
        )

    async def get(self, channel_id: str) -> Channel | None:
        row = (await self._conn.execute(select(channels).where(channels.c.id == channel_id))).first()
        return None if row is None else _channel(row)

    async def rename(self, channel_id: str, name: str) -> None:
        await self._conn.execute(update(channels).where(channels.c.id == channel_id).values(name=name))

    async def delete(self, channel_id: str) -> None:
        await self._conn.execute(delete(channel_members).where(channel_members.c.channel_id == channel_id))
        await self._conn.execute(delete(channels).where(channels.c.id == channel_id))

    async def list_all(self) -> list[Channel]:
        query = select(channels).order_by(channels.c.created_us, channels.c.id)
        return [_channel(row) for row in await self._conn.execute(query)]

    async def list_for_member(self, user_id: str) -> list[Channel]:
        query = (
            select(channels)
            .join(channel_members, channel_members.c.channel_id == channels.c.id)
            .where(channel_members.c.user_id == user_id)
            .order_by(channels.c.created_us, channels.c.id)
        )
        return [_channel(row) for row in await self._conn.execute(query)]

    async def add_member(self, member: Member) -> bool:
        values = {"channel_id": member.channel_id, "user_id": member.user_id, "added_us": member.added_us}
        insert = (
            postgresql.insert(channel_members)
            if self._conn.dialect.name == "postgresql"
            else sqlite.insert(channel_members)
        )
        result = await self._conn.execute(insert.values(**values).on_conflict_do_nothing())
        return bool(result.rowcount)

    async def remove_member(self, channel_id: str, user_id: str) -> bool:
        result = await self._conn.execute(
            delete(channel_members).where(
                channel_members.c.channel_id == channel_id, channel_members.c.user_id == user_id
            )
        )
        return bool(result.rowcount)

    async def is_member(self, channel_id: str, user_id: str) -> bool:
        query = select(channel_members.c.user_id).where(
            channel_members.c.channel_id == channel_id, channel_members.c.user_id == user_id
        )
        return (await self._conn.execute(query)).first() is not None

    async def members(self, channel_id: str) -> list[Member]:
        query = (
            select(channel_members)
            .where(channel_members.c.channel_id == channel_id)
            .order_by(channel_members.c.added_us, channel_members.c.user_id)
        )
        return [
            Member(channel_id=row.channel_id, user_id=row.user_id, added_us=row.added_us)
            for row in await self._conn.execute(query)
        ]


class SqlOutbox:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def add(self, event_id: str, subject: str, payload: bytes, trace_context: str | None = None) -> None:
        await self._conn.execute(
            outbox.insert().values(
                event_id=event_id,
                subject=subject,
                payload=payload.decode(),
                created_us=now_us(),
                trace_context=trace_context,
            )
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
            for row in await self._conn.execute(query)
        ]

    async def remove(self, seqs: list[int]) -> None:
        if seqs:
            await self._conn.execute(delete(outbox).where(outbox.c.seq.in_(seqs)))

    async def count(self) -> int:
        return int((await self._conn.execute(select(func.count()).select_from(outbox))).scalar_one())


class SqlTransaction:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn
        self._messages = SqlMessages(conn)
        self._channels = SqlChannels(conn)
        self._outbox = SqlOutbox(conn)

    @property
    def messages(self) -> SqlMessages:
        return self._messages

    @property
    def channels(self) -> SqlChannels:
        return self._channels

    @asynccontextmanager
    async def savepoint(self) -> AsyncIterator[None]:
        async with self._conn.begin_nested():
            yield

    @property
    def outbox(self) -> SqlOutbox:
        return self._outbox


class SqlStorage:
    """:class:`~herald_api.storage.protocols.Storage` on an async SQLAlchemy engine."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[SqlTransaction]:
        async with self.engine.begin() as conn:
            yield SqlTransaction(conn)

    async def migrate(self) -> list[int]:
        return await migrations.migrate(self.engine)

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def close(self) -> None:
        await self.engine.dispose()
