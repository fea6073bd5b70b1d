"""The bridge: a durable JetStream consumer of domain events that republishes them to topics.

An event is acknowledged only after every one of its topic publications was stored; each
publication carries a ``Nats-Msg-Id`` derived from the event id and the topic, so a
redelivered event (after a crash between publish and ack) is dropped by JetStream's
duplicate window instead of reaching subscribers twice.
"""

from __future__ import annotations

import asyncio
import logging

import msgspec
import nats.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from herald_bridge.mapping import message_id, publication_for, topics_for
from herald_common.config import Settings
from herald_common.events import EVENT_PREFIX, decode_event
from herald_common.natsconn import connect_until
from herald_common.streams import EVENTS_STREAM, ensure_streams
from herald_common.topics import topic_subject
from herald_common.wire import encode

log = logging.getLogger(__name__)

DURABLE = "herald-bridge"
BATCH = 256


def consumer_config() -> ConsumerConfig:
    return ConsumerConfig(
        durable_name=DURABLE,
        deliver_policy=DeliverPolicy.ALL,
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=30,
        max_ack_pending=10_000,
        filter_subject=EVENT_PREFIX + ">",
    )


async def handle(js: JetStreamContext, msg: Msg) -> None:
    """Publish one event to all of its topics, then acknowledge it."""
    try:
        event = decode_event(msg.data)
    except msgspec.MsgspecError as exc:
        log.error("dropping undecodable event on %s: %s", msg.subject, exc)
        await msg.term()
        return
    topics = topics_for(event)
    if topics:
        body = encode(publication_for(event))
        await asyncio.gather(
            *(
                js.publish(topic_subject(topic), body, headers={"Nats-Msg-Id": message_id(event, topic)})
                for topic in topics
            )
        )
    await msg.ack()


async def serve(settings: Settings, stop: asyncio.Event) -> None:
    nc = await connect_until(settings, "bridge", stop)
    if nc is None:
        return
    js = nc.jetstream()
    while not stop.is_set():
        try:
            await ensure_streams(js, settings)
            sub = await js.pull_subscribe(
                EVENT_PREFIX + ">", durable=DURABLE, stream=EVENTS_STREAM, config=consumer_config()
            )
            break
        except (nats.errors.Error, TimeoutError) as exc:
            log.warning("cannot set up the events consumer yet: %s", exc)
            await asyncio.sleep(0.5)
    else:
        await nc.close()
        return
    log.info("bridge consuming events")
    stopping = asyncio.ensure_future(stop.wait())
    try:
        while not stop.is_set():
            fetch = asyncio.ensure_future(sub.fetch(BATCH, timeout=5))
            await asyncio.wait({fetch, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if not fetch.done():
                fetch.cancel()
                break
            try:
                msgs = fetch.result()
            except (nats.errors.TimeoutError, TimeoutError):
                continue
            except nats.errors.Error as exc:
                log.warning("fetch failed: %s", exc)
                await asyncio.sleep(0.5)
                continue
            for msg in msgs:
                try:
                    await handle(js, msg)
                except (nats.errors.Error, TimeoutError) as exc:
                    # Not acknowledged: JetStream redelivers it after ack_wait.
                    log.warning("event not published yet, will be redelivered: %s", exc)
                    await msg.nak(delay=1)
    finally:
        stopping.cancel()
        await nc.drain()
