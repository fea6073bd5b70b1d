"""A small versioned schema migration runner.

Migrations are ordered by version and recorded in ``herald_schema_migrations``. They run
in one transaction under a lock (PostgreSQL advisory lock, SQLite ``BEGIN IMMEDIATE``),
so two api processes starting at once apply each migration exactly once and the second
simply finds them recorded.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from herald_api.storage.protocols import now_us

log = logging.getLogger(__name__)

VERSIONS_TABLE = "herald_schema_migrations"
#: Arbitrary constant identifying Herald's migration lock among PostgreSQL advisory locks.
PG_LOCK_KEY = 0x48455241


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    #: The statements for a dialect name ("sqlite", "postgresql").
    statements: Callable[[str], Sequence[str]]


def _initial(dialect: str) -> Sequence[str]:
    seq = "INTEGER PRIMARY KEY AUTOINCREMENT" if dialect == "sqlite" else "BIGSERIAL PRIMARY KEY"
    return [
        """CREATE TABLE messages (
            id VARCHAR(64) PRIMARY KEY,
            sender_id VARCHAR(255) NOT NULL,
            recipient_id VARCHAR(255),
            channel_id VARCHAR(64),
            content TEXT NOT NULL,
            created_us BIGINT NOT NULL,
            updated_us BIGINT
        )""",
        "CREATE INDEX ix_messages_channel ON messages (channel_id, created_us, id)",
        "CREATE INDEX ix_messages_sender ON messages (sender_id, created_us, id)",
        "CREATE INDEX ix_messages_recipient ON messages (recipient_id, created_us, id)",
        """CREATE TABLE channels (
            id VARCHAR(64) PRIMARY KEY,
            name VARCHAR(200) NOT NULL,
            owner_id VARCHAR(255) NOT NULL,
            created_us BIGINT NOT NULL
        )""",
        """CREATE TABLE channel_members (
            channel_id VARCHAR(64) NOT NULL REFERENCES channels (id) ON DELETE CASCADE,
            user_id VARCHAR(255) NOT NULL,
            added_us BIGINT NOT NULL,
            PRIMARY KEY (channel_id, user_id)
        )""",
        "CREATE INDEX ix_channel_members_user ON channel_members (user_id)",
        f"""CREATE TABLE outbox (
            seq {seq},
            event_id VARCHAR(64) NOT NULL,
            subject VARCHAR(255) NOT NULL,
            payload TEXT NOT NULL,
            created_us BIGINT NOT NULL
        )""",
    ]


def _outbox_trace_context(dialect: str) -> Sequence[str]:
    # Nullable: rows written before it (or with tracing off) carry no context.
    return ["ALTER TABLE outbox ADD COLUMN trace_context TEXT"]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "initial schema", _initial),
    Migration(2, "outbox trace context", _outbox_trace_context),
)


def _check_order(migrations: Sequence[Migration]) -> None:
    versions = [m.version for m in migrations]
    if versions != sorted(set(versions)) or any(v < 1 for v in versions):
        raise ValueError(f"migration versions must be unique, positive and ascending: {versions}")


async def migrate(engine: AsyncEngine, migrations: Sequence[Migration] = MIGRATIONS) -> list[int]:
    """Apply every migration not yet recorded; returns the versions applied by this call."""
    _check_order(migrations)
    dialect = engine.dialect.name
    applied_now: list[int] = []
    async with engine.begin() as conn:
        if dialect == "postgresql":
            await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": PG_LOCK_KEY})
        await conn.execute(
            text(
                f"CREATE TABLE IF NOT EXISTS {VERSIONS_TABLE} ("
                "version INTEGER PRIMARY KEY, name VARCHAR(200) NOT NULL, applied_us BIGINT NOT NULL)"
            )
        )
        done = set((await conn.execute(text(f"SELECT version FROM {VERSIONS_TABLE}"))).scalars())
        for migration in migrations:
            if migration.version in done:
                continue
            for statement in migration.statements(dialect):
                await conn.execute(text(statement))
            await conn.execute(
                text(f"INSERT INTO {VERSIONS_TABLE} (version, name, applied_us) VALUES (:v, :n, :t)"),
                {"v": migration.version, "n": migration.name, "t": now_us()},
            )
            applied_now.append(migration.version)
            log.info("applied migration %d (%s)", migration.version, migration.name)
    return applied_now


async def applied_versions(engine: AsyncEngine) -> list[int]:
    async with engine.connect() as conn:
        rows = await conn.execute(text(f"SELECT version FROM {VERSIONS_TABLE} ORDER BY version"))
        return list(rows.scalars())
