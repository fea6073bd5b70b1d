"""Raw publications with NATS up: stored straight on their topic in JetStream, in order,
exactly once; with NATS away or the outbox holding rows: through the outbox, still in order."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from herald_api.app import create_app
from herald_api.direct import DirectPublisher
from herald_common.streams import TOPICS_STREAM
from herald_common.topics import TOPIC_PREFIX
from herald_common.wire import decode_publication
from tests.api.conftest import app_storage, auth, make_settings, serving, wait_until
from tests.support.natsclients import connect_nats
from tests.support.procs import NatsServer

pytestmark = pytest.mark.integration

PUBLISHER = auth("app", "publisher")


class Stored:
    """(id, topic, data) of a publication read back from the topic stream."""

    def __init__(self, ident: str, topic: str, data: object) -> None:
        self.id = ident
        self.topic = topic
        self.data = data


class TopicReader:
    """Reads HERALD_TOPICS in order, straight from JetStream."""

    def __init__(self, js: JetStreamContext) -> None:
        self._js = js
        self._next = 1

    async def next(self, within: float = 20.0) -> Stored:
        found: list[Stored] = []

        async def available() -> bool:
            try:
                msg = await self._js.get_msg(TOPICS_STREAM, self._next)
            except NotFoundError:
                return False
            except Exception:  # stream not declared yet, server restarting
                return False
            publication = decode_publication(msg.data or b"")
            assert isinstance(publication.id, str)
            topic = (msg.subject or "").removeprefix(TOPIC_PREFIX)
            found.append(Stored(publication.id, topic, json.loads(bytes(publication.data))))
            return True

        await wait_until(available, within)
        self._next += 1
        return found[0]

    async def count(self) -> int:
        info = await self._js.stream_info(TOPICS_STREAM)
        return int(info.state.messages)


@pytest.fixture
async def events(nats_url: str) -> AsyncIterator[TopicReader]:
    nc = await connect_nats(nats_url, max_reconnect_attempts=-1, reconnect_time_wait=0.2)
    try:
        yield TopicReader(nc.jetstream())
    finally:
        await nc.close()


async def _ready(http: httpx.AsyncClient) -> bool:
    return (await http.get("/readyz")).status_code == 200


async def _outbox_count(app: object) -> int:
    async with app_storage(app).transaction() as tx:  # type: ignore[arg-type]
        return await tx.outbox.count()


async def test_concurrent_publishes_are_stored_directly_each_once(
    tmp_path: Path, nats_url: str, events: TopicReader
) -> None:
    app = create_app(make_settings(tmp_path, f"sqlite:///{tmp_path / 'h.db'}", nats_url))
    async with serving(app) as http:
        await wait_until(lambda: _ready(http))
        direct: DirectPublisher = app.state.direct_publisher
        await wait_until(lambda: _available(direct))

        async def one(n: int) -> str:
            response = await http.post("/api/publish", json={"topic": "d.t", "data": n}, headers=PUBLISHER)
            assert response.status_code == 202
            event_id: str = response.json()["eventId"]
            return event_id

        ids = await asyncio.gather(*(one(n) for n in range(200)))
        stored = [await events.next() for _ in ids]
        assert sorted(e.id for e in stored) == sorted(ids)
        assert all(e.topic == "d.t" for e in stored)
        assert await events.count() == 200
        assert direct.published == 200
        assert await _outbox_count(app) == 0


async def _available(direct: DirectPublisher) -> bool:
    return direct.available()


async def test_a_batch_is_stored_in_item_order_and_a_repeated_key_publishes_nothing(
    tmp_path: Path, nats_url: str, events: TopicReader
) -> None:
    app = create_app(make_settings(tmp_path, f"sqlite:///{tmp_path / 'h.db'}", nats_url))
    async with serving(app) as http:
        await wait_until(lambda: _ready(http))
        await wait_until(lambda: _available(app.state.direct_publisher))
        items = [{"topic": "b.t", "data": n, "idempotencyKey": f"k{n}"} for n in range(500)]
        first = await http.post("/api/publish/batch", json={"items": items}, headers=PUBLISHER)
        assert first.status_code == 202
        again = await http.post("/api/publish/batch", json={"items": items}, headers=PUBLISHER)
        assert again.status_code == 202
        assert again.json()["eventIds"] == first.json()["eventIds"]
        single = await http.post("/api/publish", json=items[7], headers=PUBLISHER)
        assert single.json()["eventId"] == first.json()["eventIds"][7]
        # A fence: a new publication after the repeats; nothing of the repeats precedes it.
        fence = await http.post("/api/publish", json={"topic": "b.t", "data": "fence"}, headers=PUBLISHER)
        stored = [await events.next() for _ in range(501)]
        assert [e.data for e in stored] == [*range(500), "fence"]
        assert stored[-1].id == fence.json()["eventId"]
        assert await events.count() == 501


async def test_batches_in_flight_together_are_each_stored_whole_and_in_order(
    tmp_path: Path, nats_url: str, events: TopicReader
) -> None:
    """With full batches waiting a second write goes out before the first is acknowledged;
    every request's items still land together, in item order, each once."""
    app = create_app(make_settings(tmp_path, f"sqlite:///{tmp_path / 'h.db'}", nats_url))
    async with serving(app) as http:
        await wait_until(lambda: _ready(http))
        direct: DirectPublisher = app.state.direct_publisher
        await wait_until(lambda: _available(direct))

        async def one(r: int) -> list[str]:
            items = [{"topic": f"w.{r}", "data": [r, n]} for n in range(500)]
            response = await http.post("/api/publish/batch", json={"items": items}, headers=PUBLISHER)
            assert response.status_code == 202
            ids: list[str] = response.json()["eventIds"]
            return ids

        answered = await asyncio.gather(*(one(r) for r in range(12)))
        stored = [await events.next() for _ in range(12 * 500)]
        assert await events.count() == 12 * 500
        assert direct.peak_writes == 2
        by_request: dict[int, list[int]] = {}
        for position, entry in enumerate(stored):
            assert isinstance(entry.data, list)
            request, n = entry.data
            by_request.setdefault(request, []).append(position)
            assert entry.topic == f"w.{request}"
            assert entry.id == answered[request][n]
        for positions in by_request.values():
            assert positions == list(range(positions[0], positions[0] + 500))  # one write, in item order


async def test_while_nats_is_away_publishes_go_through_the_outbox_in_order(
    tmp_path: Path, nats_server: NatsServer, events: TopicReader
) -> None:
    app = create_app(make_settings(tmp_path, f"sqlite:///{tmp_path / 'h.db'}", nats_server.url))
    async with serving(app) as http:
        await wait_until(lambda: _ready(http))
        direct: DirectPublisher = app.state.direct_publisher
        await wait_until(lambda: _available(direct))
        sent: list[int] = []

        async def publish(n: int) -> None:
            response = await http.post("/api/publish", json={"topic": "o.t", "data": n}, headers=PUBLISHER)
            assert response.status_code == 202
            sent.append(n)

        for n in range(5):
            await publish(n)
        nats_server.stop()
        for n in range(5, 15):
            await publish(n)
        assert await _outbox_count(app) > 0
        nats_server.start()
        # Published one after another while the outbox drains: none may overtake it.
        for n in range(15, 60):
            await publish(n)
            await asyncio.sleep(0.01)
        stored = [await events.next(within=30) for _ in sent]
        assert [e.data for e in stored] == sent
        await wait_until(lambda: _outbox_is_empty(app))
        assert await events.count() == len(sent)


async def _outbox_is_empty(app: object) -> bool:
    return await _outbox_count(app) == 0
