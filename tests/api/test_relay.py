"""The relay's chained publishing against a real nats-server: never a later event without
the earlier ones, never out of order."""

from __future__ import annotations

from collections.abc import AsyncIterator

import nats
import pytest
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from herald_api.relay import chain_headers, publish_chain
from herald_api.storage.protocols import OutboxEntry
from herald_common.config import load_settings
from herald_common.streams import EVENTS_STREAM, ensure_streams

pytestmark = pytest.mark.integration


def entry(n: int, subject: str = "events.test") -> OutboxEntry:
    return OutboxEntry(seq=n, event_id=f"e{n}", subject=subject, payload=f'{{"n":{n}}}'.encode())


def test_each_event_after_the_first_expects_its_predecessor() -> None:
    assert chain_headers(entry(1), None) == {"Nats-Msg-Id": "e1"}
    assert chain_headers(entry(2), entry(1)) == {"Nats-Msg-Id": "e2", "Nats-Expected-Last-Msg-Id": "e1"}


@pytest.fixture
async def js(nats_url: str) -> AsyncIterator[JetStreamContext]:
    nc = await nats.connect(nats_url)
    context = nc.jetstream()
    await ensure_streams(context, load_settings({}))
    try:
        yield context
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


async def test_a_chain_is_stored_in_order(js: JetStreamContext) -> None:
    acked, error = await publish_chain(js, [entry(n) for n in range(1, 6)])
    assert (acked, error) == (5, None)
    assert await stored(js) == ["e1", "e2", "e3", "e4", "e5"]


async def test_nothing_after_a_failed_publish_is_stored(js: JetStreamContext) -> None:
    """e2 is refused (no stream takes its subject); e3 would be stored on its own, but it
    expects e2 right before it, so JetStream refuses it too: no reordering on retry."""
    acked, error = await publish_chain(js, [entry(1), entry(2, "nostream.test"), entry(3), entry(4)])
    assert acked == 1
    assert error is not None
    assert await stored(js) == ["e1"]
    # The relay starts again from the first unacknowledged event, as a new chain.
    acked, error = await publish_chain(js, [entry(3), entry(4)])
    assert (acked, error) == (2, None)
    assert await stored(js) == ["e1", "e3", "e4"]


async def test_republishing_stored_events_adds_no_copies(js: JetStreamContext) -> None:
    await publish_chain(js, [entry(1), entry(2)])
    acked, error = await publish_chain(js, [entry(1), entry(2), entry(3)])
    assert error is None or acked >= 1
    while acked < 3:  # as drain() does: go on from the first unacknowledged event
        more, error = await publish_chain(js, [entry(n) for n in range(acked + 1, 4)])
        assert more >= 1, error
        acked += more
    assert await stored(js) == ["e1", "e2", "e3"]
