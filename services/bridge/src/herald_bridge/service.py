"""The bridge: reads domain events in stream order and publishes each to its topics.

One bridge is active at a time (see :mod:`herald_bridge.lease`); others stand by and take
over when its lease runs out, resuming right after the last sequence it recorded. Running
one at a time is what keeps every topic in event order: two bridges publishing different
events at once would interleave them.

- An event's topic publications are stored before the event counts as done, and the
  checkpoint is written after each batch. Each publication carries a ``Nats-Msg-Id`` made of
  the event id and the topic, so events published again after a takeover or a restart
  (those after the last checkpoint) are dropped by JetStream's duplicate window.
- A failed publish is retried in place, never skipped: the bridge stalls rather than
  reorder or lose.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import msgspec
import nats.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from herald_bridge.lease import Lease, LostLeaseError, lease_bucket
from herald_bridge.mapping import message_id, publication_for, topics_for
from herald_common.config import Settings
from herald_common.events import EVENT_PREFIX, Event, decode_event
from herald_common.natsconn import connect_until
from herald_common.streams import EVENTS_STREAM, ensure_streams
from herald_common.topics import topic_subject
from herald_common.wire import encode

log = logging.getLogger(__name__)

BATCH = 256
PUBLISH_TIMEOUT = 2.0
MAX_BACKOFF = 2.0


async def publish_event(js: JetStreamContext, event: Event) -> None:
    """Publish ``event`` to each of its topics (one encoded body reused for all)."""
    topics = topics_for(event)
    if not topics:
        return
    body = encode(publication_for(event))
    await asyncio.gather(
        *(
            js.publish(
                topic_subject(topic),
                body,
                timeout=PUBLISH_TIMEOUT,
                headers={"Nats-Msg-Id": message_id(event, topic)},
            )
            for topic in topics
        )
    )


class Bridge:
    """The active bridge's loop; returns when stopped, raises :class:`LostLeaseError` when replaced."""

    def __init__(self, js: JetStreamContext, lease: Lease, stop: asyncio.Event) -> None:
        self._js = js
        self._lease = lease
        self._stop = stop
        self.events = 0

    async def _start_sequence(self) -> int:
        state = (await self._js.stream_info(EVENTS_STREAM)).state
        start = self._lease.seq + 1
        if self._lease.seq > state.last_seq:
            log.warning(
                "events stream is behind the checkpoint (%d > %d): it was recreated; starting over",
                self._lease.seq,
                state.last_seq,
            )
            return max(1, state.first_seq)
        if start < state.first_seq:
            log.warning("events %d..%d expired before they were bridged", start, state.first_seq - 1)
            return state.first_seq
        return start

    async def _publish_with_retry(self, event: Event) -> bool:
        backoff = 0.1
        while True:
            try:
                await publish_event(self._js, event)
                self.events += 1
                return True
            except (nats.errors.Error, TimeoutError) as exc:
                if self._stop.is_set():
                    return False
                log.warning("publishing event %s failed, retrying: %s", event.id, type(exc).__name__)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)
                if self._lease.due():
                    with contextlib.suppress(nats.errors.Error, TimeoutError):
                        await self._lease.renew()

    async def _handle(self, msgs: list[Msg]) -> None:
        done = None
        for msg in msgs:
            try:
                event = decode_event(msg.data)
            except msgspec.MsgspecError as exc:
                log.error("skipping undecodable event at sequence %d: %s", msg.metadata.sequence.stream, exc)
            else:
                if not await self._publish_with_retry(event):
                    break
            done = msg.metadata.sequence.stream
        if done is not None:
            await self._lease.renew(done)

    async def run(self) -> None:
        start = await self._start_sequence()
        sub = await self._js.pull_subscribe(
            EVENT_PREFIX + ">",
            stream=EVENTS_STREAM,
            config=ConsumerConfig(
                deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
                opt_start_seq=start,
                ack_policy=AckPolicy.NONE,
                inactive_threshold=30.0,
                filter_subject=EVENT_PREFIX + ">",
            ),
        )
        log.info("bridge active from events sequence %d", start)
        try:
            while not self._stop.is_set():
                if self._lease.due():
                    await self._lease.renew()
                try:
                    msgs = await sub.fetch(BATCH, timeout=1)
                except (nats.errors.TimeoutError, TimeoutError):
                    continue
                await self._handle(msgs)
        finally:
            with contextlib.suppress(nats.errors.Error, TimeoutError):
                await sub.unsubscribe()


async def serve(settings: Settings, stop: asyncio.Event) -> None:
    nc = await connect_until(settings, "bridge", stop)
    if nc is None:
        return
    js = nc.jetstream()
    lease: Lease | None = None
    try:
        while not stop.is_set():
            try:
                if lease is None:
                    await ensure_streams(js, settings)
                    lease = Lease(await lease_bucket(js, settings.nats_replicas), settings.bridge_lease)
                if await lease.try_acquire():
                    await Bridge(js, lease, stop).run()
                    continue
            except LostLeaseError:
                log.warning("another bridge took over; standing by")
            except (nats.errors.Error, TimeoutError) as exc:
                log.warning("bridge paused: %s", type(exc).__name__ + (f": {exc}" if str(exc) else ""))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), settings.bridge_lease / 3)
    finally:
        if lease is not None:
            with contextlib.suppress(nats.errors.Error, TimeoutError):
                await lease.release()
        await nc.drain()
