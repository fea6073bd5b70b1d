"""Database URLs, migrations and the repositories."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import text

from herald_api.storage import migrations
from herald_api.storage.engine import async_url, create_engine
from herald_api.storage.protocols import Cursor, Message, MessageFilter
from herald_api.storage.sql import SqlStorage
from herald_common.config import ConfigError, Settings, load_settings
from herald_common.errors import HeraldError


@pytest.mark.parametrize(
    ("configured", "expected"),
    [
        ("sqlite:///var/x.db", "sqlite+aiosqlite:///var/x.db"),
        ("sqlite:////abs/x.db", "sqlite+aiosqlite:////abs/x.db"),
        ("postgresql://u:p@h:5432/d", "postgresql+asyncpg://u:p@h:5432/d"),
        ("postgres://u@h/d", "postgresql+asyncpg://u@h/d"),
        ("postgresql+asyncpg://u@h/d", "postgresql+asyncpg://u@h/d"),
    ],
)
def test_database_urls_map_to_async_drivers(configured: str, expected: str) -> None:
    assert async_url(load_settings({}, database_url=configured)) == expected


def test_default_database_is_sqlite_in_data_dir(tmp_path: Path) -> None:
    settings = load_settings({}, data_dir=str(tmp_path / "state"))
    assert async_url(settings) == f"sqlite+aiosqlite:///{tmp_path / 'state' / 'herald.db'}"


@pytest.mark.parametrize("bad", ["mysql://h/d", "not a url"])
def test_unsupported_database_urls_are_rejected(bad: str) -> None:
    with pytest.raises(ConfigError):
        async_url(load_settings({}, database_url=bad))


async def test_sqlite_folder_is_created(tmp_path: Path) -> None:
    settings = load_settings({}, data_dir=str(tmp_path / "new" / "dir"))
    store = SqlStorage(create_engine(settings))
    try:
        assert await store.migrate() == [1, 2]
        assert (tmp_path / "new" / "dir" / "herald.db").exists()
    finally:
        await store.close()


async def test_migrations_are_idempotent(storage: SqlStorage) -> None:
    assert await storage.migrate() == [1, 2]
    assert await storage.migrate() == []
    assert await migrations.applied_versions(storage.engine) == [1, 2]


async def test_concurrent_migrations_apply_once(settings: Settings) -> None:
    stores = [SqlStorage(create_engine(settings)) for _ in range(3)]
    try:
        results = await asyncio.gather(*(s.migrate() for s in stores))
        assert sorted(results) == [[], [], [1, 2]]
        assert await migrations.applied_versions(stores[0].engine) == [1, 2]
    finally:
        for s in stores:
            await s.close()


async def test_later_migrations_run_in_order_and_only_once(storage: SqlStorage) -> None:
    last = migrations.MIGRATIONS[-1].version
    extra = (
        *migrations.MIGRATIONS,
        migrations.Migration(last + 1, "notes", lambda _: ["CREATE TABLE notes (id INTEGER PRIMARY KEY)"]),
        migrations.Migration(last + 2, "notes text", lambda _: ["ALTER TABLE notes ADD COLUMN body TEXT"]),
    )
    await storage.migrate()
    assert await migrations.migrate(storage.engine, extra) == [last + 1, last + 2]
    assert await migrations.migrate(storage.engine, extra) == []
    async with storage.engine.begin() as conn:
        await conn.execute(text("INSERT INTO notes (id, body) VALUES (1, 'x')"))


async def test_out_of_order_migrations_are_refused(storage: SqlStorage) -> None:
    bad = (migrations.Migration(2, "b", lambda _: []), migrations.Migration(1, "a", lambda _: []))
    with pytest.raises(ValueError, match="ascending"):
        await migrations.migrate(storage.engine, bad)


async def test_failed_transaction_leaves_nothing(storage: SqlStorage) -> None:
    await storage.migrate()
    message = Message("m1", "alice", "bob", None, "hello", 1)

    async def write_then_fail() -> None:
        async with storage.transaction() as tx:
            await tx.messages.add(message)
            await tx.outbox.add("e1", "events.message.sent", b"{}")
            raise RuntimeError("abort")

    with pytest.raises(RuntimeError):
        await write_then_fail()
    async with storage.transaction() as tx:
        assert await tx.messages.get("m1") is None
        assert await tx.outbox.count() == 0


async def test_page_orders_by_time_then_id(storage: SqlStorage) -> None:
    await storage.migrate()
    async with storage.transaction() as tx:
        for i, created in enumerate([5, 7, 7, 7, 9]):
            await tx.messages.add(Message(f"m{i}", "alice", "bob", None, "x", created))
    async with storage.transaction() as tx:
        first = await tx.messages.page(MessageFilter(involving="bob"), None, 3)
        assert [m.id for m in first] == ["m4", "m3", "m2"]
        rest = await tx.messages.page(MessageFilter(involving="bob"), Cursor(7, "m2"), 10)
        assert [m.id for m in rest] == ["m1", "m0"]


def test_cursor_round_trip_and_garbage() -> None:
    cursor = Cursor(1_700_000_000_000_001, "abc")
    assert Cursor.decode(cursor.encode()) == cursor
    for garbage in ["", "!!!", "bm90LWEtY3Vyc29y"]:
        with pytest.raises(HeraldError):
            Cursor.decode(garbage)


async def test_outbox_keeps_the_trace_context(storage: SqlStorage) -> None:
    await storage.migrate()
    context = '{"traceparent":"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}'
    async with storage.transaction() as tx:
        await tx.outbox.add("e1", "events.message.sent", b"{}", context)
        await tx.outbox.add("e2", "events.message.sent", b"{}")
    async with storage.transaction() as tx:
        entries = await tx.outbox.pending(10)
    assert [(e.event_id, e.trace_context) for e in entries] == [("e1", context), ("e2", None)]


async def test_trace_context_migration_keeps_waiting_rows(storage: SqlStorage) -> None:
    await migrations.migrate(storage.engine, migrations.MIGRATIONS[:1])
    async with storage.engine.begin() as conn:
        await conn.execute(
            text("INSERT INTO outbox (event_id, subject, payload, created_us) VALUES ('e0', 'events.x', '{}', 1)")
        )
    assert await storage.migrate() == [2]
    async with storage.transaction() as tx:
        (entry,) = await tx.outbox.pending(10)
    assert (entry.event_id, entry.trace_context) == ("e0", None)


async def test_read_only_transactions_refuse_writes(storage: SqlStorage) -> None:
    await storage.migrate()
    with pytest.raises(RuntimeError, match="read-only"):
        async with storage.transaction(read_only=True) as tx:
            await tx.messages.add(Message("m1", "alice", "bob", None, "hello", 1))
    async with storage.transaction(read_only=True) as tx:
        assert await tx.messages.get("m1") is None


async def test_reads_do_not_wait_for_an_open_write_transaction(storage: SqlStorage) -> None:
    """A read-only transaction takes no write lock: it runs (and sees the last commit) while
    a write transaction holds the lock. With BEGIN IMMEDIATE it would wait for the writer."""
    await storage.migrate()
    async with storage.transaction() as tx:
        await tx.messages.add(Message("m1", "alice", "bob", None, "hello", 1))
    async with storage.transaction() as writer:
        await writer.messages.add(Message("m2", "alice", "bob", None, "not yet", 2))
        await writer.messages.get("m2")  # the write transaction has begun and holds the lock
        async with storage.transaction(read_only=True) as reader:
            assert await reader.messages.get("m1") is not None
            assert await reader.messages.get("m2") is None
