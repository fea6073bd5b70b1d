"""The outbox relay delivers events to JetStream, also across a NATS outage."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from herald_api.app import create_app
from herald_common.events import MESSAGE_SENT
from herald_common.streams import TOPICS_STREAM
from herald_common.wire import decode_publication
from tests.api.conftest import EventReader, app_storage, auth, make_settings, serving, wait_until
from tests.support.natsclients import connect_nats
from tests.support.procs import NatsServer

pytestmark = pytest.mark.integration


async def _ready(http: httpx.AsyncClient) -> bool:
    return (await http.get("/readyz")).status_code == 200


async def test_post_reaches_the_events_stream(
    tmp_path: Path, database_url: str, nats_url: str, events: EventReader
) -> None:
    app = create_app(make_settings(tmp_path, database_url, nats_url))
    async with serving(app) as http:
        await wait_until(lambda: _ready(http))
        response = await http.post("/api/messages", json={"content": "hi", "recipientId": "bob"}, headers=auth("a"))
        assert response.status_code == 201
        event = await events.next()
        assert event.type == MESSAGE_SENT
        assert event.data == response.json()

        async def outbox_empty() -> bool:
            async with app_storage(app).transaction() as tx:
                return await tx.outbox.count() == 0

        await wait_until(outbox_empty)


async def test_post_while_nats_is_down_is_delivered_after_restart(
    tmp_path: Path, database_url: str, nats_server: NatsServer, events: EventReader
) -> None:
    app = create_app(make_settings(tmp_path, database_url, nats_server.url))
    async with serving(app) as http:
        await wait_until(lambda: _ready(http))
        nats_server.stop()
        await wait_until(lambda: _not_ready(http))
        response = await http.post("/api/messages", json={"content": "while down"}, headers=auth("a"))
        assert response.status_code == 201
        nats_server.start()
        event = await events.next(within=30)
        assert event.type == MESSAGE_SENT
        assert event.data == response.json()
        await wait_until(lambda: _ready(http))
        assert await events.count() == 1


async def _not_ready(http: httpx.AsyncClient) -> bool:
    return (await http.get("/readyz")).status_code == 503


async def test_api_started_without_nats_delivers_once_nats_comes_up(tmp_path: Path, database_url: str) -> None:
    server = NatsServer()
    app = create_app(make_settings(tmp_path, database_url, server.url))
    try:
        async with serving(app) as http:
            assert (await http.get("/readyz")).status_code == 503
            response = await http.post("/api/messages", json={"content": "early"}, headers=auth("a"))
            assert response.status_code == 201
            server.start()
            nc = await connect_nats(server.url)
            try:
                event = await EventReader(nc.jetstream()).next(within=30)
            finally:
                await nc.close()
            assert event.data == response.json()
            await wait_until(lambda: _ready(http))
    finally:
        server.cleanup()


async def test_publish_is_stored_on_its_topic_not_as_an_event(
    tmp_path: Path, database_url: str, nats_url: str, events: EventReader
) -> None:
    """A raw publication names its topic: the api stores it there itself (no bridge)."""
    app = create_app(make_settings(tmp_path, database_url, nats_url))
    nc = await connect_nats(nats_url)
    try:
        async with serving(app) as http:
            await wait_until(lambda: _ready(http))
            body = {"topic": "orders.eu", "data": {"n": 1, "tags": ["x"]}}
            response = await http.post("/api/publish", json=body, headers=auth("svc", "publisher"))
            assert response.status_code == 202
            msg = await nc.jetstream().get_last_msg(TOPICS_STREAM, "topics.orders.eu")
            publication = decode_publication(msg.data or b"")
            assert publication.id == response.json()["eventId"]
            assert json.loads(bytes(publication.data)) == body["data"]
            assert await events.count() == 0
    finally:
        await nc.close()


async def test_events_leave_in_commit_order(
    tmp_path: Path, database_url: str, nats_url: str, events: EventReader
) -> None:
    app = create_app(make_settings(tmp_path, database_url, nats_url))
    async with serving(app) as http:
        sent = []
        for i in range(20):
            response = await http.post("/api/messages", json={"content": f"m{i}"}, headers=auth("a"))
            sent.append(response.json()["id"])
        received = [(await events.next()).data["id"] for _ in sent]
        assert received == sent
