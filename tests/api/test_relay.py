"""The relay's publishing against a real nats-server: never a later event without the
earlier ones, never out of order, no copies when published again."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from herald_api.relay import RELAY_LOCK
from herald_api.relay import publish_in_order as relay_publish
from herald_api.storage.engine import create_engine
from herald_api.storage.protocols import OutboxEntry
from herald_api.storage.sql import SqlStorage
from herald_common.config import Settings, load_settings
from herald_common.streams import EVENTS_STREAM, ensure_streams
from tests.support.natsclients import connect_nats

pytestmark = pytest.mark.integration


async def publish_in_order(
    nc: Client, js: JetStreamContext, entries: list[OutboxEntry]
) -> tuple[int, Exception | None]:
    """How many entries the relay's publish stored, and its error."""
    stored, error = await relay_publish(nc, js, entries)
    return len(stored), error


def entry(n: int, subject: str = "events.test") -> OutboxEntry:
    return OutboxEntry(seq=n, event_id=f"e{n}", subject=subject, payload=f'{{"n":{n}}}'.encode())


@pytest.fixture
async def conn(nats_url: str) -> AsyncIterator[tuple[Client, JetStreamContext]]:
    nc = await connect_nats(nats_url)
    context = nc.jetstream()
    await ensure_streams(context, load_settings({}))
    try:
        yield nc, context
    finally:
        await nc.close()


async def stored(js: JetStreamContext) -> list[str]:
    ids: list[str] = []
    seq = 1
    while True:
        try:
            msg = await js.get_msg(EVENTS_STREAM, seq)
        except NotFoundError:
            return ids
        assert msg.headers is not None
        ids.append(msg.headers["Nats-Msg-Id"])
        seq += 1


async def test_events_are_stored_in_order(conn: tuple[Client, JetStreamContext]) -> None:
    acked, error = await publish_in_order(*conn, [entry(n) for n in range(1, 6)])
    assert (acked, error) == (5, None)
    assert await stored(conn[1]) == ["e1", "e2", "e3", "e4", "e5"]


async def test_nothing_after_a_refused_event_is_sent(conn: tuple[Client, JetStreamContext]) -> None:
    """A short run goes out one publish at a time. e2 cannot be published (larger than the
    server's max_payload): e3 is not sent after it, so it cannot be stored ahead of it;
    retried without it, the rest is stored in order."""
    huge = OutboxEntry(seq=2, event_id="e2", subject="events.test", payload=b"x" * (2 * 1024 * 1024))
    acked, error = await publish_in_order(*conn, [entry(1), huge, entry(3)])
    assert acked == 1
    assert error is not None
    assert await stored(conn[1]) == ["e1"]
    acked, error = await publish_in_order(*conn, [entry(3), entry(4)])
    assert (acked, error) == (2, None)
    assert await stored(conn[1]) == ["e1", "e3", "e4"]


async def test_republishing_stored_events_adds_no_copies(conn: tuple[Client, JetStreamContext]) -> None:
    assert await publish_in_order(*conn, [entry(1), entry(2)]) == (2, None)
    assert await publish_in_order(*conn, [entry(1), entry(2), entry(3)]) == (3, None)
    assert await stored(conn[1]) == ["e1", "e2", "e3"]


async def test_rows_for_two_streams_each_reach_theirs_in_order(conn: tuple[Client, JetStreamContext]) -> None:
    """Domain events and raw topic publications share the outbox; a batch holds one stream's,
    so each stream's rows go out together, in their order, however they interleave."""
    rows = [entry(1), entry(2), entry(3, "topics.t.x"), entry(4, "topics.t.x"), entry(5), entry(6, "topics.t.y")]
    rows += [entry(n, "topics.t.x" if n % 2 else "events.test") for n in range(7, 40)]
    assert await publish_in_order(*conn, rows) == (len(rows), None)
    assert await stored(conn[1]) == ["e1", "e2", "e5"] + [f"e{n}" for n in range(8, 40, 2)]
    topic_ids = ["e3", "e4", "e6"] + [f"e{n}" for n in range(7, 40, 2)]
    topics = [(await conn[1].get_msg("HERALD_TOPICS", seq)).headers for seq in range(1, len(topic_ids) + 1)]
    assert [h["Nats-Msg-Id"] for h in topics if h is not None] == topic_ids


async def test_relays_sharing_a_database_take_turns(settings: Settings) -> None:
    """Two api processes' storages on one database: while one holds the relay lock the
    other does not get it (a PostgreSQL advisory lock; a file lock beside a SQLite file)."""
    first, second = SqlStorage(create_engine(settings)), SqlStorage(create_engine(settings))
    try:
        async with first.exclusive(RELAY_LOCK) as mine:
            assert mine
            async with second.exclusive(RELAY_LOCK) as theirs:
                assert not theirs
        async with second.exclusive(RELAY_LOCK) as theirs:
            assert theirs
    finally:
        await first.close()
        await second.close()


async def test_a_batch_with_an_unpublishable_event_stores_none_of_it(conn: tuple[Client, JetStreamContext]) -> None:
    rows = [entry(n) for n in range(1, 13)]
    rows[5] = OutboxEntry(seq=6, event_id="e6", subject="events.test", payload=b"x" * (2 * 1024 * 1024))
    acked, error = await publish_in_order(*conn, rows)
    assert acked == 0
    assert error is not None
    assert await stored(conn[1]) == []
