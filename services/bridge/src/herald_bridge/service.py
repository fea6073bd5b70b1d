"""The bridge: reads domain events in stream order and publishes each to its topics.

One bridge is active at a time (see :mod:`herald_bridge.lease`); others stand by and take
over when its lease runs out, resuming right after the last sequence it recorded. Running
one at a time is what keeps every topic in event order: two bridges publishing different
events at once would interleave them.

- Events are fetched in runs of up to 1,000; their topic publications go out in event
  order as JetStream atomic batches (:mod:`herald_common.jsbatch`), each stored whole or
  not at all, one batch in flight, and the checkpoint is written once a run is stored.
  Each publication carries a ``Nats-Msg-Id`` made of the event id and the topic, so events
  published again after a takeover or a restart (those after the last checkpoint) are
  dropped by JetStream's duplicate window; a batch holding such a copy is refused whole
  and then published one message at a time.
- A failed publish is retried in place, never skipped: the bridge stalls rather than
  reorder or lose.

With tracing on, each event gets a ``process events.<type>`` span continuing the trace
the api put in the event's headers, and each topic publication a ``publish topics.<topic>``
span whose context goes out in that publication's headers (and so on to the gateways).
Every bridge serves ``/healthz``, ``/readyz`` and ``/metrics`` on
``HERALD_BRIDGE_METRICS_PORT``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any

import msgspec
import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from opentelemetry import trace
from opentelemetry.trace import SpanKind

from herald_bridge.lag import LagWatcher
from herald_bridge.lease import Lease, LostLeaseError, lease_bucket
from herald_bridge.mapping import message_id, publication_for, topics_for
from herald_bridge.metrics import Metrics
from herald_common import telemetry
from herald_common.beacon import Beacon
from herald_common.config import Settings
from herald_common.events import EVENT_PREFIX, Event, decode_event
from herald_common.health import HealthServer
from herald_common.jsbatch import MSG_ID, Outgoing, publish_in_order
from herald_common.natsconn import connect_until
from herald_common.streams import EVENTS_STREAM, ensure_streams
from herald_common.topics import topic_subject
from herald_common.wire import encode

log = logging.getLogger(__name__)

#: Events fetched at most per pull; their publications go out as atomic batches.
BATCH = 1000
PUBLISH_TIMEOUT = 2.0
MAX_BACKOFF = 2.0

_tracer = telemetry.tracer(__name__)


@dataclass(slots=True)
class _Work:
    """The topic publications of a fetched run of events, and their spans."""

    messages: list[Outgoing] = field(default_factory=list)
    spans: list[trace.Span] = field(default_factory=list)
    #: Each event with its number of publications and its ``process`` span (tracing on).
    events: list[tuple[Event, int, trace.Span | None]] = field(default_factory=list)

    def end_spans(self, error: BaseException | None = None) -> None:
        for span in self.spans:
            if error is not None:
                span.record_exception(error)
                span.set_status(trace.StatusCode.ERROR, type(error).__name__)
            span.end()
        self.spans.clear()


def publications(event: Event) -> list[Outgoing]:
    """The messages that put ``event`` on each of its topics (one encoded body for all)."""
    topics = topics_for(event)
    if not topics:
        return []
    body = encode(publication_for(event))
    return [Outgoing(topic_subject(topic), body, {MSG_ID: message_id(event, topic)}) for topic in topics]


def _trace(work: _Work, msg: Msg, event: Event, outgoing: list[Outgoing]) -> trace.Span:
    """Spans for one event (continuing the api's trace) and each of its publications; each
    publication's context goes out in its headers. Returns the event's span."""
    process = _tracer.start_span(
        f"process {msg.subject}",
        context=telemetry.extract(msg.headers),
        kind=SpanKind.CONSUMER,
        attributes={
            "messaging.system": "nats",
            "messaging.operation.type": "process",
            "messaging.destination.name": msg.subject,
            "messaging.message.id": event.id,
            "herald.event.type": event.type,
        },
    )
    work.spans.append(process)
    parent = trace.set_span_in_context(process)
    for message in outgoing:
        work.spans.append(
            telemetry.publish_span(_tracer, message.subject, message.headers[MSG_ID], message.headers, parent)
        )
    return process


class Bridge:
    """The active bridge's loop; returns when stopped, raises :class:`LostLeaseError` when replaced."""

    def __init__(self, nc: Client, lease: Lease, stop: asyncio.Event, metrics: Metrics) -> None:
        self._nc = nc
        self._js = nc.jetstream()
        self._lease = lease
        self._stop = stop
        self._metrics = metrics
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

    def _prepare(self, msgs: list[Msg]) -> _Work:
        work = _Work()
        for msg in msgs:
            try:
                event = decode_event(msg.data)
            except msgspec.MsgspecError as exc:
                self._metrics.undecodable.inc()
                log.error("skipping undecodable event at sequence %d: %s", msg.metadata.sequence.stream, exc)
                continue
            outgoing = publications(event)
            span = _trace(work, msg, event, outgoing) if telemetry.tracing_enabled else None
            work.messages.extend(outgoing)
            work.events.append((event, len(outgoing), span))
        return work

    @staticmethod
    def _log_bridged(work: _Work) -> None:
        # One line per event, inside its span so it carries the trace ids; debug only,
        # so the loop is skipped unless someone asked for it.
        if not log.isEnabledFor(logging.DEBUG):
            return
        for event, count, span in work.events:
            extra = {"event_id": event.id, "event_type": event.type, "topics": count}
            if span is None:
                log.debug("event bridged", extra=extra)
                continue
            with trace.use_span(span, end_on_exit=False):
                log.debug("event bridged", extra=extra)

    async def _publish(self, work: _Work) -> bool:
        """Store every publication of ``work`` in order, retrying in place; False when stopped first."""
        backoff = 0.1
        done = 0
        while True:
            acked, error = await publish_in_order(self._nc, self._js, work.messages[done:], PUBLISH_TIMEOUT)
            done += acked
            if error is None:
                return True
            self._metrics.publish_failures.inc()
            if self._stop.is_set():
                return False
            log.warning("publishing topic messages failed, retrying: %s", type(error).__name__)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF)
            if self._lease.due():
                with contextlib.suppress(nats.errors.Error, TimeoutError):
                    await self._lease.renew()

    async def _handle(self, msgs: list[Msg]) -> None:
        """Publish a fetched run of events to their topics, then record the checkpoint."""
        work = self._prepare(msgs)
        try:
            published = await self._publish(work)
            if published:
                self._log_bridged(work)
        except BaseException as exc:
            work.end_spans(exc)
            raise
        work.end_spans()
        if not published:
            return  # stopping: the events after the checkpoint are published again later
        self.events += len(work.events)
        self._metrics.events.inc(len(work.events))
        self._metrics.publications.inc(len(work.messages))
        if msgs:
            await self._lease.renew(msgs[-1].metadata.sequence.stream)

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


def _not_ready(nc: Client | None, lag: LagWatcher | None) -> str:
    if nc is None or not nc.is_connected:
        return "nats not connected"
    if lag is None or not lag.stream_reachable:
        return "events stream not reachable"
    return ""


async def serve(settings: Settings, stop: asyncio.Event) -> None:
    nc: Client | None = None
    lag: LagWatcher | None = None
    metrics = Metrics(nats_connected=lambda: 1.0 if nc is not None and nc.is_connected else 0.0)
    health: HealthServer | None = None
    if settings.bridge_metrics_port:
        health = HealthServer(metrics, not_ready=lambda: _not_ready(nc, lag))
        await health.start(settings.bridge_host, settings.bridge_metrics_port)
    try:
        nc = await connect_until(settings, "bridge", stop)
        if nc is None:
            return
        lag = LagWatcher(nc.jetstream(), metrics)

        async def role() -> dict[str, Any]:
            return {"role": _role(metrics)}

        beacon = Beacon("bridge", settings.node_heartbeat, role)
        await beacon.attach(nc)
        await _bridge(nc, settings, stop, metrics, lag, beacon)
    finally:
        if health is not None:
            await health.close()


def _role(metrics: Metrics) -> str:
    return "active" if metrics.registry.get_sample_value("herald_bridge_active") else "standby"


async def _bridge(
    nc: Client, settings: Settings, stop: asyncio.Event, metrics: Metrics, lag: LagWatcher, beacon: Beacon
) -> None:
    js = nc.jetstream()
    lease: Lease | None = None
    watcher = asyncio.create_task(lag.run(stop))
    try:
        while not stop.is_set():
            try:
                if lease is None:
                    await ensure_streams(js, settings)
                    lease = Lease(await lease_bucket(js, settings.nats_replicas), settings.bridge_lease)
                if await lease.try_acquire():
                    metrics.active.set(1)
                    try:
                        await Bridge(nc, lease, stop, metrics).run()
                    finally:
                        metrics.active.set(0)
                    continue
            except LostLeaseError:
                log.warning("another bridge took over; standing by")
            except (nats.errors.Error, TimeoutError) as exc:
                log.warning("bridge paused: %s", type(exc).__name__ + (f": {exc}" if str(exc) else ""))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), settings.bridge_lease / 3)
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
        if lease is not None:
            with contextlib.suppress(nats.errors.Error, TimeoutError):
                await lease.release()
        await beacon.close()
        try:
            await asyncio.wait_for(nc.drain(), settings.shutdown_grace)
        except (nats.errors.Error, TimeoutError):
            # Draining needs a live connection; stopping while NATS is away must still exit
            # cleanly, and nats-py's close can fail on a transport already gone.
            with contextlib.suppress(Exception):
                await nc.close()
