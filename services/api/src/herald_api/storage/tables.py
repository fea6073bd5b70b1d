"""Table definitions used to build queries (the DDL lives in :mod:`.migrations`)."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, MetaData, String, Table, Text

metadata = MetaData()

messages = Table(
    "messages",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("sender_id", String(255), nullable=False),
    Column("recipient_id", String(255)),
    Column("channel_id", String(64)),
    Column("content", Text, nullable=False),
    Column("created_us", BigInteger, nullable=False),
    Column("updated_us", BigInteger),
)

channels = Table(
    "channels",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("owner_id", String(255), nullable=False),
    Column("created_us", BigInteger, nullable=False),
)

channel_members = Table(
    "channel_members",
    metadata,
    Column("channel_id", String(64), primary_key=True),
    Column("user_id", String(255), primary_key=True),
    Column("added_us", BigInteger, nullable=False),
)

outbox = Table(
    "outbox",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=True),
    Column("event_id", String(64), nullable=False),
    Column("subject", String(255), nullable=False),
    Column("payload", Text, nullable=False),
    Column("created_us", BigInteger, nullable=False),
    Column("trace_context", Text, nullable=True),
)
