"""Atomic batch publishing against a real nats-server: order, all or nothing, duplicates."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import StorageType, StreamConfig
from nats.js.errors import NotFoundError

from herald_common.jsbatch import (
    DUPLICATE_IN_BATCH,
    MAX_BATCH,
    MSG_ID,
    SMALL_RUN,
    BatchError,
    Outgoing,
    publish_atomic,
    publish_in_order,
)
from tests.support.natsclients import connect_nats

pytestmark = pytest.mark.integration

STREAM = "BATCHTEST"


def message(n: int, subject: str = "bt.a") -> Outgoing:
    return Outgoing(subject, f'{{"n":{n}}}'.encode(), {MSG_ID: f"m{n}"})


@pytest.fixture
async def conn(nats_url: str) -> AsyncIterator[tuple[Client, JetStreamContext]]:
    nc = await connect_nats(nats_url)
    js = nc.jetstream()
    await js.add_stream(
        StreamConfig(name=STREAM, subjects=["bt.>"], storage=StorageType.FILE, allow_atomic=True, duplicate_window=60)
    )
    await js.add_stream(StreamConfig(name="PLAIN", subjects=["plain.>"], storage=StorageType.FILE))
    try:
        yield nc, js
    finally:
        await nc.close()


async def stored(js: JetStreamContext, stream: str = STREAM) -> list[str]:
    ids: list[str] = []
    seq = 1
    while True:
        try:
            msg = await js.get_msg(stream, seq)
        except NotFoundError:
            return ids
        assert msg.headers is not None
        ids.append(msg.headers[MSG_ID])
        seq += 1


async def test_a_batch_is_stored_in_order_with_one_acknowledgement(conn: tuple[Client, JetStreamContext]) -> None:
    nc, js = conn
    last = await publish_atomic(nc, [message(n) for n in range(1, 101)], timeout=5)
    assert last == 100
    assert await stored(js) == [f"m{n}" for n in range(1, 101)]


async def test_every_message_keeps_its_own_headers_and_payload(conn: tuple[Client, JetStreamContext]) -> None:
    """Messages with only their id and messages with more headers (a trace context) mixed in
    one batch: each is stored with exactly its headers, its payload and its batch headers."""
    nc, js = conn
    extra = {MSG_ID: "t2", "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
    batch = [message(1), Outgoing("bt.b", b"", extra), message(3), Outgoing("bt.c", b"\r\n\x00", {MSG_ID: "t4"})]
    await publish_atomic(nc, batch, timeout=5)
    for seq, sent in enumerate(batch, start=1):
        got = await js.get_msg(STREAM, seq)
        assert got.subject == sent.subject and (got.data or b"") == sent.payload
        assert got.headers is not None
        assert {k: v for k, v in got.headers.items() if not k.startswith("Nats-Batch-")} == sent.headers
        if seq < len(batch):
            assert got.headers.get("Nats-Batch-Sequence") == str(seq)


async def test_a_batch_holding_a_stored_id_is_refused_whole(conn: tuple[Client, JetStreamContext]) -> None:
    nc, js = conn
    await publish_atomic(nc, [message(1), message(2)], timeout=5)
    with pytest.raises(BatchError) as refused:
        await publish_atomic(nc, [message(2), message(3), message(4)], timeout=5)
    assert refused.value.err_code == DUPLICATE_IN_BATCH
    assert await stored(js) == ["m1", "m2"]


async def test_a_refused_batch_stores_nothing(conn: tuple[Client, JetStreamContext]) -> None:
    """A stream without allow_atomic refuses batches: nothing of one is stored, and
    publish_in_order reports that none of it is stored."""
    nc, js = conn
    batch = [message(n, "plain.x") for n in range(1, SMALL_RUN + 3)]
    with pytest.raises(BatchError):
        await publish_atomic(nc, batch, timeout=5)
    acked, error = await publish_in_order(nc, js, batch, timeout=5)
    assert acked == 0
    assert isinstance(error, BatchError)
    assert await stored(js, "PLAIN") == []


async def test_partly_stored_runs_are_completed_in_order_without_copies(conn: tuple[Client, JetStreamContext]) -> None:
    nc, js = conn
    first = SMALL_RUN + 2
    assert await publish_in_order(nc, js, [message(n) for n in range(first)], timeout=5) == (first, None)
    # The first ones are already stored: the batch is refused, then sent one at a time.
    again = range(first - 3, first + SMALL_RUN)
    assert await publish_in_order(nc, js, [message(n) for n in again], timeout=5) == (len(again), None)
    assert await stored(js) == [f"m{n}" for n in range(first + SMALL_RUN)]


async def test_short_runs_are_plain_publishes_in_order(conn: tuple[Client, JetStreamContext]) -> None:
    nc, js = conn
    assert await publish_in_order(nc, js, [message(n, "plain.x") for n in range(SMALL_RUN)], timeout=5) == (
        SMALL_RUN,
        None,
    )
    assert await stored(js, "PLAIN") == [f"m{n}" for n in range(SMALL_RUN)]


async def test_a_lone_message_is_a_plain_publish(conn: tuple[Client, JetStreamContext]) -> None:
    nc, js = conn
    assert await publish_in_order(nc, js, [message(1)], timeout=5) == (1, None)
    assert await publish_in_order(nc, js, [message(1)], timeout=5) == (1, None)
    assert await stored(js) == ["m1"]


async def test_long_runs_are_split_into_batches(conn: tuple[Client, JetStreamContext]) -> None:
    nc, js = conn
    total = MAX_BATCH + 250
    assert await publish_in_order(nc, js, [message(n) for n in range(total)], timeout=10) == (total, None)
    assert await stored(js) == [f"m{n}" for n in range(total)]


async def test_two_publishers_racing_over_overlapping_runs_store_each_once_in_order(
    conn: tuple[Client, JetStreamContext],
) -> None:
    """What two outbox relays do when they read overlapping pending rows: each publishes its
    own run, in order, after its previous run was stored; every id ends up stored once and
    in order, whatever the interleaving."""
    nc, js = conn
    runs_a = [range(0, 300), range(300, 700), range(700, 1000)]
    runs_b = [range(0, 150), range(150, 520), range(520, 900), range(900, 1000)]

    async def relay(runs: list[range]) -> None:
        for run in runs:
            acked, error = await publish_in_order(nc, js, [message(n) for n in run], timeout=5)
            assert (acked, error) == (len(run), None)

    await asyncio.gather(relay(runs_a), relay(runs_b))
    assert await stored(js) == [f"m{n}" for n in range(1000)]
