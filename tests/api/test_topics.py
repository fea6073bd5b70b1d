"""GET /api/topics/{topic}/history: the stored history, with the gateway's offsets and epoch."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg

from herald_api.app import create_app
from herald_common import wire
from herald_common.access import NeedsMembership, Verdict, authorize_subscribe
from herald_common.streams import TOPICS_STREAM, epoch_of
from herald_common.tokens import Claims, issue_token
from herald_common.topics import live_subject, topic_subject
from tests.api.conftest import SECRET, auth, make_settings, serving, wait_until
from tests.support.natsclients import connect_nats
from tests.support.procs import NatsServer
from tests.support.stack import Stack, client, token


def claims(sub: str, *roles: str, topics: tuple[str, ...] = ()) -> Claims:
    return Claims(sub=sub, exp=0, roles=frozenset(roles), topics=topics)


def test_rules_match_subscribing() -> None:
    assert authorize_subscribe(claims("root", "admin"), "anything.at.all") is Verdict.ALLOW
    assert authorize_subscribe(claims("alice"), "messages.user.alice") is Verdict.ALLOW
    assert authorize_subscribe(claims("alice"), "messages.user.bob") is Verdict.DENY
    assert authorize_subscribe(claims("alice"), "messages") is Verdict.DENY
    assert authorize_subscribe(claims("alice"), "messages.channel.c1") == NeedsMembership("c1")
    assert authorize_subscribe(claims("alice", topics=("orders.**",)), "orders.eu.created") is Verdict.ALLOW
    assert authorize_subscribe(claims("alice", topics=("orders.*",)), "orders.eu.created") is Verdict.DENY
    assert authorize_subscribe(claims("alice", topics=("orders.**.x",)), "orders.eu.x") is Verdict.DENY
    # A sub that is not one token has no personal topic.
    assert authorize_subscribe(claims("a.b"), "messages.user.a.b") is Verdict.DENY


@pytest.fixture
async def nc(nats_url: str) -> AsyncIterator[NatsClient]:
    conn = await connect_nats(nats_url)
    try:
        yield conn
    finally:
        await conn.close()


@pytest.fixture
async def http(tmp_path: Path, database_url: str, nats_url: str) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(make_settings(tmp_path, database_url, nats_url, page_limit_max=3))
    async with serving(app) as h:
        nc = await connect_nats(nats_url)
        js = nc.jetstream()

        async def ready() -> bool:
            # Ready means connected; the tests also publish to the topics stream straight away.
            if (await h.get("/readyz")).status_code != 200:
                return False
            try:
                await js.stream_info(TOPICS_STREAM)
            except Exception:
                return False
            return True

        try:
            await wait_until(ready)
        finally:
            await nc.close()
        yield h


def publication(data: Any, event: str | None = None) -> bytes:
    body = wire.Publication(data=msgspec.Raw(json.dumps(data).encode()), event=event or msgspec.UNSET)
    return wire.encode(body)


class LiveTap:
    """What a gateway sees: the ``live.`` republish, with the offset in ``Nats-Sequence``."""

    def __init__(self) -> None:
        self.frames: list[dict[str, Any]] = []
        self.epoch = ""

    async def on_msg(self, msg: Msg) -> None:
        pub = wire.decode_publication(msg.data)
        frame: dict[str, Any] = {
            "topic": msg.subject.removeprefix("live."),
            "data": msgspec.json.decode(pub.data),
            "offset": int((msg.headers or {})["Nats-Sequence"]),
            "epoch": self.epoch,
        }
        if pub.event is not msgspec.UNSET:
            frame["event"] = pub.event
        self.frames.append(frame)


async def test_history_equals_what_a_gateway_delivers(http: httpx.AsyncClient, nc: NatsClient) -> None:
    js = nc.jetstream()
    tap = LiveTap()
    tap.epoch = epoch_of(await js.stream_info(TOPICS_STREAM))
    await nc.subscribe(live_subject("orders.**"), cb=tap.on_msg)
    await nc.flush()
    for i in range(5):
        await js.publish(topic_subject("orders.eu"), publication({"n": i}, "order.created" if i % 2 else None))
        await js.publish(topic_subject("orders.us"), publication({"other": i}))

    async def all_seen() -> bool:
        return len(tap.frames) == 10

    await wait_until(all_seen)
    expected = [f for f in tap.frames if f["topic"] == "orders.eu"]
    headers = {"Authorization": f"Bearer {issue_token(SECRET, 'reader', topics=['orders.*'])}"}

    # page_limit_max is 3: a larger limit is capped, and nextSince walks the rest.
    first = (await http.get("/api/topics/orders.eu/history", params={"limit": 50}, headers=headers)).json()
    assert first["items"] == expected[:3]
    assert first["epoch"] == tap.epoch
    assert first["nextSince"] == expected[2]["offset"]
    second = (
        await http.get("/api/topics/orders.eu/history", params={"since": first["nextSince"]}, headers=headers)
    ).json()
    assert second["items"] == expected[3:]
    assert second["nextSince"] is None
    assert "event" not in second["items"][1] and second["items"][0]["event"] == "order.created"

    one = (await http.get("/api/topics/orders.eu/history", params={"limit": 1}, headers=headers)).json()
    assert one["items"] == expected[:1]
    assert one["nextSince"] == expected[0]["offset"]
    tail = await http.get("/api/topics/orders.eu/history", params={"since": expected[-1]["offset"]}, headers=headers)
    assert tail.json() == {"items": [], "epoch": tap.epoch, "nextSince": None}
    empty = (await http.get("/api/topics/orders.none/history", headers=headers)).json()
    assert empty == {"items": [], "epoch": tap.epoch, "nextSince": None}


async def test_undecodable_messages_are_skipped_like_the_gateway_does(http: httpx.AsyncClient, nc: NatsClient) -> None:
    js = nc.jetstream()
    await js.publish(topic_subject("raw.t"), b"not json")
    ack = await js.publish(topic_subject("raw.t"), publication([1, 2]))
    body = (await http.get("/api/topics/raw.t/history", headers=auth("root", "admin"))).json()
    assert [(i["offset"], i["data"]) for i in body["items"]] == [(ack.seq, [1, 2])]


async def test_history_says_who_published_when_the_publication_does(http: httpx.AsyncClient, nc: NatsClient) -> None:
    js = nc.jetstream()
    signed = wire.Publication(data=msgspec.Raw(b'{"n":1}'), publisher="alice")
    with_publisher = await js.publish(topic_subject("pub.t"), wire.encode(signed))
    without = await js.publish(topic_subject("pub.t"), publication({"n": 2}))
    items = (await http.get("/api/topics/pub.t/history", headers=auth("root", "admin"))).json()["items"]
    assert [(i["offset"], i.get("publisher")) for i in items] == [(with_publisher.seq, "alice"), (without.seq, None)]
    assert "publisher" not in items[1]


@pytest.mark.parametrize("levels", [970, 5000])
async def test_a_deeply_nested_stored_message_costs_only_itself(
    http: httpx.AsyncClient, nc: NatsClient, levels: int
) -> None:
    # Stored before the api limited nesting, or written to the subject directly.
    js = nc.jetstream()
    before = await js.publish(topic_subject("deep.t"), publication("before"))
    await js.publish(topic_subject("deep.t"), b'{"data":' + b"[" * levels + b"]" * levels + b"}")
    after = await js.publish(topic_subject("deep.t"), publication("after"))
    response = await http.get("/api/topics/deep.t/history", headers=auth("root", "admin"))
    assert response.status_code == 200, response.text
    items = [(i["offset"], i["data"]) for i in response.json()["items"]]
    assert (before.seq, "before") in items and (after.seq, "after") in items
    assert (await http.get("/readyz")).status_code == 200


async def test_who_may_read(http: httpx.AsyncClient, nc: NatsClient) -> None:
    js = nc.jetstream()
    channel = (await http.post("/api/channels", json={"name": "team"}, headers=auth("owner"))).json()["id"]
    await http.put(f"/api/channels/{channel}/members/member", headers=auth("owner"))
    for topic in ("messages.user.alice", f"messages.channel.{channel}", "messages"):
        await js.publish(topic_subject(topic), publication({"on": topic}, "message.sent"))

    async def status(topic: str, headers: dict[str, str]) -> int:
        return (await http.get(f"/api/topics/{topic}/history", headers=headers)).status_code

    assert await status("messages.user.alice", auth("alice")) == 200
    assert await status("messages.user.alice", auth("bob")) == 403
    assert await status("messages", auth("alice")) == 403
    assert await status("messages", auth("root", "admin")) == 200
    assert await status(f"messages.channel.{channel}", auth("member")) == 200
    assert await status(f"messages.channel.{channel}", auth("owner")) == 200
    assert await status(f"messages.channel.{channel}", auth("stranger")) == 403
    assert await status("messages.channel.nonexistent", auth("stranger")) == 403
    assert await status("messages.user.alice", {}) == 401
    denied = await http.get("/api/topics/messages.user.alice/history", headers=auth("bob"))
    assert denied.json()["code"] == "forbidden"
    items = (await http.get(f"/api/topics/messages.channel.{channel}/history", headers=auth("member"))).json()
    assert [i["data"] for i in items["items"]] == [{"on": f"messages.channel.{channel}"}]


@pytest.mark.parametrize("topic", ["orders.*", "orders.**", "a..b", "a%20b", "x" * 256])
async def test_invalid_topic_is_400(http: httpx.AsyncClient, topic: str) -> None:
    response = await http.get(f"/api/topics/{topic}/history", headers=auth("root", "admin"))
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_topic"


@pytest.mark.parametrize("params", [{"since": "-1"}, {"limit": "0"}, {"since": "x"}, {"since": str(2**64)}])
async def test_bad_parameters_are_400(http: httpx.AsyncClient, params: dict[str, str]) -> None:
    response = await http.get("/api/topics/a.b/history", params=params, headers=auth("root", "admin"))
    assert response.status_code == 400
    assert response.json()["code"] == "bad_request"


async def test_without_nats_it_is_503(tmp_path: Path, database_url: str, unused_nats_url: str) -> None:
    app = create_app(make_settings(tmp_path, database_url, unused_nats_url))
    async with serving(app) as h:
        response = await h.get("/api/topics/messages.user.alice/history", headers=auth("alice"))
        assert response.status_code == 503
        assert response.json()["code"] == "unavailable"
        # Authorization comes first: no NATS needed to say no.
        assert (await h.get("/api/topics/messages/history", headers=auth("alice"))).status_code == 403


async def test_nats_going_away_is_503(tmp_path: Path, database_url: str, nats_server: NatsServer) -> None:
    app = create_app(make_settings(tmp_path, database_url, nats_server.url))
    async with serving(app) as h:

        async def ready() -> bool:
            return (await h.get("/readyz")).status_code == 200

        await wait_until(ready)
        url = "/api/topics/messages.user.alice/history"
        assert (await h.get(url, headers=auth("alice"))).status_code == 200
        nats_server.stop()
        response = await h.get(url, headers=auth("alice"))
        assert response.status_code == 503


@pytest.mark.integration
async def test_history_matches_a_real_gateway_after_a_real_post(tmp_path: Path, nats_server: NatsServer) -> None:
    """POST through api → bridge → gateway; the WebSocket frame equals the history item."""
    stack = Stack(nats_server, tmp_path)
    try:
        stack.start_api()
        stack.start_bridge()
        gateway = stack.start_gateway()
        with client(gateway.url, "alice") as ws:
            assert ws.subscribe("messages.user.alice")["type"] == "subscribed"
            alice = token("alice")
            posted = await asyncio.to_thread(stack.post, "/api/messages", {"content": "hi", "recipientId": "b"}, alice)
            assert posted.status_code == 201
            frames = await asyncio.to_thread(ws.messages, 1, 20.0)
        async with httpx.AsyncClient(base_url=stack.api_url, timeout=10) as h:
            response = await h.get(
                "/api/topics/messages.user.alice/history", headers={"Authorization": f"Bearer {alice}"}
            )
        assert response.status_code == 200, response.text
        body = response.json()
        frame = frames[0]
        frame.pop("type")
        assert body["items"] == [frame], stack.logs()
        assert frame["event"] == "message.sent" and frame["data"] == posted.json()
        assert body["epoch"] == frame["epoch"]
    finally:
        stack.stop()
