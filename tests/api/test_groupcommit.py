"""Group commit against the real databases: shared commits, isolated failures."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy.exc import IntegrityError

from herald_api.storage.groupcommit import GroupCommit
from herald_api.storage.protocols import Message, Transaction, now_us
from herald_api.storage.sql import SqlStorage


@pytest.fixture
async def db(storage: SqlStorage) -> SqlStorage:
    await storage.migrate()
    return storage


def message(n: int) -> Message:
    return Message(
        id=f"m{n}", sender_id="s", recipient_id="r", channel_id=None, content=f"c{n}", created_us=now_us() + n
    )


async def test_concurrent_writes_share_commits(db: SqlStorage) -> None:
    writes = GroupCommit(db)
    writes.start()
    try:

        async def add(n: int) -> int:
            async def op(tx: Transaction) -> int:
                await tx.messages.add(message(n))
                return n

            return await writes.write(op)

        results = await asyncio.gather(*(add(n) for n in range(200)))
    finally:
        await writes.close()
    assert results == list(range(200))
    assert 1 <= writes.commits < 200, "concurrent writes were committed one by one"
    async with db.transaction() as tx:
        for n in range(200):
            stored = await tx.messages.get(f"m{n}")
            assert stored is not None
            assert stored.content == f"c{n}"


async def test_a_failing_write_is_rolled_back_alone(db: SqlStorage) -> None:
    writes = GroupCommit(db)
    writes.start()

    async def good(n: int) -> None:
        async def op(tx: Transaction) -> None:
            await tx.messages.add(message(n))

        await writes.write(op)

    async def bad() -> None:
        async def op(tx: Transaction) -> None:
            await tx.messages.add(message(999))  # written, then undone with its savepoint
            raise ValueError("refused")

        await writes.write(op)

    try:
        outcomes = await asyncio.gather(good(1), bad(), good(2), return_exceptions=True)
    finally:
        await writes.close()
    assert outcomes[0] is None
    assert outcomes[2] is None
    assert isinstance(outcomes[1], ValueError)
    async with db.transaction() as tx:
        assert await tx.messages.get("m1") is not None
        assert await tx.messages.get("m2") is not None
        assert await tx.messages.get("m999") is None


async def test_close_commits_what_is_queued(db: SqlStorage) -> None:
    writes = GroupCommit(db)
    writes.start()

    async def op(tx: Transaction) -> None:
        await tx.messages.add(message(7))

    pending = asyncio.ensure_future(writes.write(op))
    await asyncio.sleep(0)
    await writes.close()
    await pending
    async with db.transaction() as tx:
        assert await tx.messages.get("m7") is not None


@pytest.mark.parametrize("n", [1])
async def test_unstarted_group_commit_writes_directly(db: SqlStorage, n: int) -> None:
    writes = GroupCommit(db)

    async def op(tx: Transaction) -> str:
        await tx.messages.add(message(n))
        return "done"

    assert await writes.write(op) == "done"
    async with db.transaction() as tx:
        assert await tx.messages.get(f"m{n}") is not None


async def test_a_write_failing_at_commit_is_rolled_back_alone(db: SqlStorage) -> None:
    """SQLite runs a batch's writes only at the commit: a constraint failing there must still
    reach only its own caller, with its outbox row undone and the others kept."""
    async with db.transaction() as tx:
        await tx.messages.add(message(1))
    writes = GroupCommit(db)
    writes.start()

    async def post(n: int) -> None:
        async def op(tx: Transaction) -> None:
            await tx.outbox.add(f"e{n}", "events.message.sent", b"{}")
            await tx.messages.add(message(n))  # n == 1: the id is taken

        await writes.write(op)

    try:
        outcomes = await asyncio.gather(post(2), post(1), post(3), return_exceptions=True)
    finally:
        await writes.close()
    assert outcomes[0] is None
    assert outcomes[2] is None
    assert isinstance(outcomes[1], IntegrityError)
    async with db.transaction(read_only=True) as tx:
        assert [entry.event_id for entry in await tx.outbox.pending(10)] == ["e2", "e3"]
        assert await tx.messages.get("m2") is not None
        assert await tx.messages.get("m3") is not None


async def test_a_read_after_a_failed_write_raises_in_place(db: SqlStorage) -> None:
    async with db.transaction() as tx:
        await tx.messages.add(message(1))
    seen: list[BaseException] = []
    async with db.transaction() as tx:
        try:
            async with tx.savepoint():
                await tx.messages.add(message(1))
                await tx.messages.get("m1")  # runs the insert first: its failure surfaces here
        except IntegrityError as exc:
            seen.append(exc)
        await tx.messages.add(message(2))
    assert len(seen) == 1
    async with db.transaction(read_only=True) as tx:
        assert await tx.messages.get("m2") is not None


async def test_a_failed_write_outside_a_savepoint_fails_the_transaction(db: SqlStorage) -> None:
    async with db.transaction() as tx:
        await tx.messages.add(message(1))

    async def add_both() -> None:
        async with db.transaction() as tx:
            await tx.messages.add(message(2))
            await tx.messages.add(message(1))

    with pytest.raises(IntegrityError):
        await add_both()
    async with db.transaction(read_only=True) as tx:
        assert await tx.messages.get("m2") is None
