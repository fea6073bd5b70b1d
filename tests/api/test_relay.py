"""The relay's publishing against a real nats-server: never a later event without the
earlier ones, never out of order, no copies when published again."""

from __future__ import annotations

from collections.abc import AsyncIterator

import nats
import pytest
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from herald_api.relay import publish_in_order
from herald_api.storage.protocols import OutboxEntry
from herald_common.config import load_settings
from herald_common.streams import EVENTS_STREAM, ensure_streams

pytestmark = pytest.mark.integration


def entry(n: int, subject: str = "events.test") -> OutboxEntry:
    return OutboxEntry(seq=n, event_id=f"e{n}", subject=subject, payload=f'{{"n":{n}}}'.encode())


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


async def test_events_are_stored_in_order(js: JetStreamContext) -> None:
    acked, error = await publish_in_order(js, [entry(n) for n in range(1, 6)])
    assert (acked, error) == (5, None)
    assert await stored(js) == ["e1", "e2", "e3", "e4", "e5"]


async def test_nothing_after_a_failed_publish_is_sent(js: JetStreamContext) -> None:
    """e2 is refused (no stream takes its subject): e3 and e4 are not sent after it, so
    they cannot be stored ahead of it."""
    acked, error = await publish_in_order(js, [entry(1), entry(2, "nostream.test"), entry(3), entry(4)])
    assert acked == 1
    assert error is not None
    assert await stored(js) == ["e1"]
    acked, error = await publish_in_order(js, [entry(3), entry(4)])
    assert (acked, error) == (2, None)
    assert await stored(js) == ["e1", "e3", "e4"]


async def test_republishing_stored_events_adds_no_copies(js: JetStreamContext) -> None:
    assert await publish_in_order(js, [entry(1), entry(2)]) == (2, None)
    assert await publish_in_order(js, [entry(1), entry(2), entry(3)]) == (3, None)
    assert await stored(js) == ["e1", "e2", "e3"]
