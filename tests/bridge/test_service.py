"""The bridge against a real nats-server: order, idempotence, failover."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import nats
from nats.aio.client import Client
from nats.js import JetStreamContext

from herald_bridge.service import publications
from herald_common.config import load_settings
from herald_common.events import MESSAGE_SENT, Event, encode_event, new_event
from herald_common.jsbatch import publish_in_order
from herald_common.streams import TOPICS_STREAM, ensure_streams
from tests.support.natsclients import connect_nats
from tests.support.procs import NatsServer, Service, free_port


async def topic_bodies(js: JetStreamContext, topic: str) -> list[dict[str, object]]:
    sub = await js.pull_subscribe(f"topics.{topic}", stream=TOPICS_STREAM)
    out: list[dict[str, object]] = []
    try:
        while True:
            msgs = await sub.fetch(100, timeout=1)
            for m in msgs:
                out.append(json.loads(m.data))
                await m.ack()
    except (nats.errors.TimeoutError, TimeoutError):
        return out
    finally:
        await sub.unsubscribe()


async def publish_event(nc: Client, event: Event) -> None:
    outgoing = publications(event)
    assert await publish_in_order(nc, nc.jetstream(), outgoing, timeout=5) == (len(outgoing), None)


async def test_redelivered_event_is_stored_once(nats_url: str) -> None:
    nc = await connect_nats(nats_url)
    js = nc.jetstream()
    settings = load_settings({})
    await ensure_streams(js, settings)
    event = new_event(MESSAGE_SENT, {"id": "m1", "senderId": "s1", "recipientId": "r1", "channelId": None})
    await publish_event(nc, event)
    await publish_event(nc, event)  # as after a crash between publish and ack
    bodies = await topic_bodies(js, "messages.user.r1")
    assert [b["id"] for b in bodies] == [event.id]
    await nc.close()


async def _publish_events(nats_url: str, count: int, recipient: str) -> list[str]:
    nc = await connect_nats(nats_url)
    js = nc.jetstream()
    await ensure_streams(js, load_settings({}))
    ids = []
    for i in range(count):
        ev = new_event(MESSAGE_SENT, {"id": f"m{i}", "senderId": "sender", "recipientId": recipient, "n": i})
        await js.publish(ev.subject, encode_event(ev), headers={"Nats-Msg-Id": ev.id})
        ids.append(ev.id)
    await nc.close()
    return ids


async def _topic_ids(nats_url: str, topic: str) -> list[str]:
    nc = await connect_nats(nats_url)
    try:
        return [str(b["id"]) for b in await topic_bodies(nc.jetstream(), topic)]
    finally:
        await nc.close()


async def _publish_and_kill_mid_stream(
    nats_url: str, bridge: Service, count: int, recipient: str
) -> tuple[list[str], tuple[int, int]]:
    """Publish ``count`` events and SIGKILL ``bridge`` while it is part-way through them.

    Returns the event ids and the evidence: (topic messages the bridge had stored, events
    published) read just before the kill; each event here belongs on three topics, so fewer
    than three per event means the bridge had a backlog when it died.
    """
    nc = await connect_nats(nats_url)
    js = nc.jetstream()
    await ensure_streams(js, load_settings({}))
    ids: list[str] = []
    evidence: tuple[int, int] | None = None

    async def stored() -> int:
        return int((await js.stream_info(TOPICS_STREAM)).state.messages)

    try:
        for i in range(count):
            ev = new_event(MESSAGE_SENT, {"id": f"m{i}", "senderId": "sender", "recipientId": recipient, "n": i})
            await js.publish(ev.subject, encode_event(ev), headers={"Nats-Msg-Id": ev.id})
            ids.append(ev.id)
            if i == 50:  # the bridge must be at work before it can be caught mid-stream
                for _ in range(400):  # up to 20 s
                    if await stored() >= 3:
                        break
                    await asyncio.sleep(0.05)
            if evidence is None and i > 50 and i % 10 == 0:
                done = await stored()
                if 30 <= done < 3 * len(ids):
                    bridge.kill()
                    evidence = (done, len(ids))
    finally:
        await nc.close()
    assert evidence is not None, "the bridge never published while events were arriving"
    return ids, evidence


def test_bridge_sigkilled_mid_stream_then_restarted_with_a_standby_loses_nothing_and_keeps_order(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    env = {"HERALD_NATS_URL": nats_server.url, "HERALD_DATA_DIR": str(tmp_path), "HERALD_BRIDGE_LEASE": "2"}
    first = Service("bridge", {**env, "HERALD_BRIDGE_METRICS_PORT": str(free_port())}, tmp_path / "bridge1.log")
    second = Service("bridge", {**env, "HERALD_BRIDGE_METRICS_PORT": str(free_port())}, tmp_path / "bridge2.log")
    first.start()
    try:
        # Fewer events than a topic keeps (HERALD_HISTORY_SIZE, 1000), so all can be compared.
        ids, (stored, published) = asyncio.run(_publish_and_kill_mid_stream(nats_server.url, first, 600, "r-kill"))
        print(f"SIGKILL with {stored} topic messages stored for {published} events (3 each)")
        # The same bridge restarted, and a standby next to it: they take turns by batch.
        first.start()
        second.start()
        more = asyncio.run(_publish_events(nats_server.url, 300, "r-kill"))
        expected = ids + more
        deadline = time.monotonic() + 30
        got: list[str] = []
        while time.monotonic() < deadline:
            got = asyncio.run(_topic_ids(nats_server.url, "messages.user.r-kill"))
            if len(got) >= len(expected):
                break
            time.sleep(0.5)
        assert first.stop() == 0, first.logs()
        assert second.stop() == 0, second.logs()
        assert got == expected, f"{len(got)} stored, {len(set(got))} distinct, {len(expected)} expected"
    finally:
        first.stop()
        second.stop()
