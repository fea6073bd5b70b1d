"""Presence across gateways: the I/O around :class:`~herald_gateway.tracker.Tracker` and
:class:`~herald_gateway.roster.Roster`.

The client side says which sockets hold which exact topics (:meth:`PresenceSide.track`,
:meth:`PresenceSide.untrack`) and asks for answers to ``presence`` queries. This class
batches the changes of its own sockets onto ``herald.presence.sync.<id>`` (one NATS
message per flush, every :data:`FLUSH_DELAY` at most), heartbeats, answers snapshot
requests and the api's queries, and keeps every other gateway's state in the roster.
Each join or leave the roster derives becomes one encoded frame, written to every local
socket that subscribed to the topic with ``presence: true``, up to
``HERALD_PRESENCE_MAX_USERS`` users on the topic; the gateway that caused it also stores
it on the ``HERALD_PRESENCE`` stream (the leaves of a dropped gateway: the live gateway
with the smallest id). Subjects and messages: :mod:`herald_common.presence`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable
from typing import Any

import msgspec
from msgspec import UNSET
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext

from herald_common import presence as p
from herald_common import wire
from herald_common.config import Settings
from herald_common.jsbatch import MAX_BATCH, MSG_ID, Outgoing, publish_in_order
from herald_gateway.connection import ClientConnection
from herald_gateway.fanout import text_frame
from herald_gateway.metrics import Metrics
from herald_gateway.roster import Change, Kind, PeerState, Roster
from herald_gateway.tracker import Tracker

log = logging.getLogger("herald.gateway")

#: Changes of the local sockets wait this long to share one NATS message.
FLUSH_DELAY = 0.02
#: How often silent gateways are looked for (the expiry bound is the timeout plus this).
EXPIRE_EVERY = 1.0
SNAPSHOT_TIMEOUT = 3.0
#: Entries per NATS message (a batch or a snapshot chunk): well under 1 MB however long the names.
SNAPSHOT_CHUNK = 1000
#: How long a starting gateway waits for the others' state before it takes clients.
START_SYNC = 1.5
#: Joins and leaves waiting to be stored at most; beyond, the oldest are dropped (and counted).
MAX_QUEUED = 100_000
STORE_TIMEOUT = 5.0


class PresenceSide:
    """Presence for one gateway process; does nothing until :meth:`attach`."""

    def __init__(self, settings: Settings, metrics: Metrics, overflow: Callable[[ClientConnection], None]) -> None:
        self.id = uuid.uuid4().hex[:16]
        self._heartbeat = settings.presence_heartbeat
        self._cap = settings.presence_max_users
        self._tracker = Tracker(settings.presence_grace)
        self._roster = Roster(self.id, settings.presence_timeout, settings.presence_grace)
        self._overflow = overflow
        #: topic -> local sockets that asked for join/leave frames
        self._watchers: dict[str, set[ClientConnection]] = {}
        #: socket -> exact topics it holds -> whether it watches them
        self._held: dict[ClientConnection, dict[str, bool]] = {}
        self._seq = 0
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._subs: list[Subscription] = []
        self._timer: asyncio.TimerHandle | None = None
        self._snapshots: set[str] = set()
        self._queue: deque[Outgoing] = deque()
        self._queued = asyncio.Event()
        #: set whenever the store loop has emptied the queue
        self._drained = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._metrics = metrics

    @property
    def entries(self) -> int:
        """(topic, user, gateway) entries known, this gateway's own included."""
        return self._roster.members

    @property
    def gateways(self) -> int:
        """Other gateways whose presence is known."""
        return len(self._roster.peers)

    # the client side

    def track(self, conn: ClientConnection, topic: str, watch: bool) -> None:
        """``conn`` holds the exact ``topic`` (again: ``watch`` is updated)."""
        user = conn.session.user_id
        if user is None:
            return
        held = self._held.setdefault(conn, {})
        if topic not in held:
            self._tracker.add(topic, user)
            self._schedule(FLUSH_DELAY)
        held[topic] = watch
        if watch:
            self._watchers.setdefault(topic, set()).add(conn)
        else:
            self._unwatch(conn, topic)

    def untrack(self, conn: ClientConnection, topic: str) -> None:
        held = self._held.get(conn)
        user = conn.session.user_id
        if held is None or topic not in held or user is None:
            return
        del held[topic]
        if not held:
            del self._held[conn]
        self._unwatch(conn, topic)
        self._tracker.remove(topic, user, time.time())
        self._schedule(FLUSH_DELAY)

    def _unwatch(self, conn: ClientConnection, topic: str) -> None:
        watchers = self._watchers.get(topic)
        if watchers is not None:
            watchers.discard(conn)
            if not watchers:
                del self._watchers[topic]

    def answer(self, topic: str, frame_id: Any) -> bytes:
        """The ``presence`` frame for ``topic``: users (sorted) up to the cap, the count always."""
        count = self._roster.count(topic)
        users: list[str] | msgspec.UnsetType = (
            [user for user, _ in self._roster.users(topic)] if count <= self._cap else UNSET
        )
        try:
            return wire.encode(wire.Presence(topic=topic, count=count, users=users, id=frame_id))
        except (TypeError, ValueError, OverflowError):
            return wire.encode(wire.Presence(topic=topic, count=count, users=users))

    def topic_presence(self, topic: str) -> p.TopicPresence:
        count = self._roster.count(topic)
        if count > self._cap:
            return p.TopicPresence(topic=topic, count=count)
        users = [p.UserPresence(user_id=u, connections=n) for u, n in self._roster.users(topic)]
        return p.TopicPresence(topic=topic, count=count, users=users)

    # flushing this gateway's changes

    def _schedule(self, delay: float) -> None:
        """Flush within ``delay`` seconds (sooner if already due sooner)."""
        if self._nc is None:
            return
        loop = asyncio.get_running_loop()
        at = loop.time() + max(0.0, delay)
        if self._timer is not None:
            if self._timer.when() <= at:
                return
            self._timer.cancel()  # a held-back leave was due later than this change
        self._timer = loop.call_at(at, self._flush)

    def _flush(self) -> None:
        self._timer = None
        now = time.time()
        entries = self._tracker.flush(now)
        # A burst is split so that no NATS message comes near the server's payload limit.
        for start in range(0, len(entries), SNAPSHOT_CHUNK):
            chunk = entries[start : start + SNAPSHOT_CHUNK]
            self._seq += 1
            self._send(p.SYNC_PREFIX + self.id, p.Sync(gateway=self.id, seq=self._seq, entries=chunk))
            self._metrics.presence_batches.inc()
            self._relay(self._roster.apply_own(chunk), store=True)
        deadline = self._tracker.deadline
        if self._tracker.pending:
            self._schedule(FLUSH_DELAY)
        elif deadline is not None:
            self._schedule(deadline - now)

    def _send(self, subject: str, message: msgspec.Struct, reply: str = "") -> None:
        """Publish without waiting (in order: each task appends to the client's buffer at once)."""
        nc = self._nc
        if nc is None or nc.is_closed:
            return
        self._spawn(self._publish(nc, subject, p.encoder.encode(message), reply))

    @staticmethod
    async def _publish(nc: Client, subject: str, data: bytes, reply: str) -> None:
        try:
            await nc.publish(subject, data, reply=reply)
        except Exception as exc:
            # A lost batch is found by the others' next heartbeat check (they ask for a snapshot).
            log.warning("a presence message could not be published: %s", type(exc).__name__)

    # joins and leaves

    def _relay(self, changes: list[Change], store: bool) -> None:
        now_ms = int(time.time() * 1000)
        for change in changes:
            if store:
                self._store(change, now_ms)
            if change.count > self._cap:
                continue
            watchers = self._watchers.get(change.topic)
            if not watchers:
                continue
            kind = wire.Join if change.kind is Kind.JOIN else wire.Leave
            frame = text_frame(wire.encode(kind(topic=change.topic, user_id=change.user)))
            for conn in list(watchers):
                if not conn.deliver(frame):
                    self._overflow(conn)
            self._metrics.presence_frames.inc(len(watchers))

    def _store(self, change: Change, at: int) -> None:
        event = p.PresenceEvent(type=change.kind.value, topic=change.topic, user_id=change.user, at=at, gateway=self.id)
        msg_id = uuid.uuid4().hex
        self._queue.append(
            Outgoing(p.event_subject(event.type, change.topic), p.encoder.encode(event), {MSG_ID: msg_id})
        )
        if len(self._queue) > MAX_QUEUED:
            self._queue.popleft()
            self._metrics.presence_events_dropped.inc()
        self._queued.set()

    async def _store_loop(self) -> None:
        delay = 0.2
        while True:
            await self._queued.wait()
            self._queued.clear()
            while self._queue:
                nc = self._nc
                if nc is None:
                    return
                batch = [self._queue[i] for i in range(min(MAX_BATCH, len(self._queue)))]
                done, error = await publish_in_order(nc, self._js or nc.jetstream(), batch, STORE_TIMEOUT)
                for _ in range(done):
                    self._queue.popleft()
                self._metrics.presence_events.inc(done)
                if error is not None:
                    log.warning("storing presence events failed: %s", type(error).__name__)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 5.0)
                else:
                    delay = 0.2
            self._drained.set()

    # NATS

    async def attach(self, nc: Client) -> None:
        """Listen to the other gateways, get their state (waiting at most :data:`START_SYNC`), start beating."""
        self._nc = nc
        self._js = nc.jetstream()
        subscribe = nc.subscribe
        # One subscription for all of it: nats-py runs each subscription's callbacks in a task
        # of its own, and a heartbeat must not overtake the batch sent before it.
        self._subs = [await subscribe(p.PREFIX + ">", cb=self._on_message)]
        await nc.flush()
        await nc.publish(p.HELLO_SUBJECT, b"")
        # The others beat at once when they hear the hello; wait for the first beats, then the snapshots.
        await asyncio.sleep(0.25)
        for _ in range(int((START_SYNC - 0.25) / 0.05)):
            if not self._roster.syncing():
                break
            await asyncio.sleep(0.05)
        self._subs.append(await subscribe(p.QUERY_SUBJECT, queue=p.GATEWAY_QUEUE, cb=self._on_query))
        self._spawn(self._beat_loop())
        self._spawn(self._expire_loop())
        self._spawn(self._store_loop())

    async def _on_message(self, msg: Msg) -> None:
        subject = msg.subject
        if subject.startswith(p.SYNC_PREFIX):
            await self._on_sync(msg)
        elif subject.startswith(p.BEAT_PREFIX):
            await self._on_beat(msg)
        elif subject == p.SNAPSHOT_PREFIX + self.id:
            await self._on_snapshot_request(msg)
        elif subject.startswith(p.BYE_PREFIX):
            await self._on_bye(msg)
        elif subject == p.HELLO_SUBJECT:
            await self._on_hello(msg)

    async def _on_sync(self, msg: Msg) -> None:
        try:
            sync = p.sync_decoder.decode(msg.data)
        except msgspec.DecodeError:
            log.warning("ignored a malformed presence batch")
            return
        changes, resync = self._roster.on_sync(sync.gateway, sync.seq, sync.entries, time.time())
        self._relay(changes, store=False)
        if resync:
            self._fetch(sync.gateway)

    async def _on_beat(self, msg: Msg) -> None:
        try:
            beat = p.beat_decoder.decode(msg.data)
        except msgspec.DecodeError:
            return
        if self._roster.on_beat(beat.gateway, beat.seq, time.time()):
            self._fetch(beat.gateway)

    async def _on_bye(self, msg: Msg) -> None:
        with contextlib.suppress(msgspec.DecodeError):
            self._roster.on_bye(p.bye_decoder.decode(msg.data).gateway, time.time())

    async def _on_hello(self, msg: Msg) -> None:
        self._send(p.BEAT_PREFIX + self.id, p.Beat(gateway=self.id, seq=self._seq))

    async def _on_snapshot_request(self, msg: Msg) -> None:
        if not msg.reply:
            return
        # State and number are read together (no await in between), so they match.
        seq, entries = self._seq, self._tracker.state()
        chunks = [entries[i : i + SNAPSHOT_CHUNK] for i in range(0, len(entries), SNAPSHOT_CHUNK)] or [[]]
        for i, chunk in enumerate(chunks):
            snap = p.Snapshot(gateway=self.id, seq=seq, entries=chunk, last=i == len(chunks) - 1)
            self._send(msg.reply, snap)

    async def _on_query(self, msg: Msg) -> None:
        if not msg.reply:
            return
        try:
            topic = p.query_decoder.decode(msg.data).topic
        except msgspec.DecodeError:
            return
        self._send(msg.reply, self.topic_presence(topic))

    def _fetch(self, gateway: str) -> None:
        if gateway not in self._snapshots:
            self._snapshots.add(gateway)
            self._spawn(self._snapshot(gateway))

    async def _snapshot(self, gateway: str) -> None:
        nc = self._nc
        assert nc is not None
        inbox = nc.new_inbox()
        got: list[p.Entry] = []
        done = asyncio.get_running_loop().create_future()
        seq = 0

        async def chunk(msg: Msg) -> None:
            nonlocal seq
            with contextlib.suppress(msgspec.DecodeError):
                snap = p.snapshot_decoder.decode(msg.data)
                got.extend(snap.entries)
                seq = snap.seq
                if snap.last and not done.done():
                    done.set_result(None)

        try:
            sub = await nc.subscribe(inbox, cb=chunk)
            try:
                await nc.publish(p.SNAPSHOT_PREFIX + gateway, b"", reply=inbox)
                await asyncio.wait_for(done, SNAPSHOT_TIMEOUT)
            finally:
                await sub.unsubscribe()
        except Exception as exc:
            log.warning("presence snapshot of another gateway failed: %s", type(exc).__name__)
            return  # still syncing: its next heartbeat asks again
        finally:
            self._snapshots.discard(gateway)
        self._metrics.presence_snapshots.inc()
        self._relay(self._roster.on_snapshot(gateway, seq, got, time.time()), store=False)

    async def _beat_loop(self) -> None:
        while True:
            self._send(p.BEAT_PREFIX + self.id, p.Beat(gateway=self.id, seq=self._seq))
            await asyncio.sleep(self._heartbeat)

    async def _expire_loop(self) -> None:
        while True:
            await asyncio.sleep(EXPIRE_EVERY)
            changes, gone = self._roster.expire(time.time())
            if gone:
                log.info("presence: dropped %d gateway(s) that went silent or left", len(gone))
            self._relay(changes, store=self._roster.leader)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self, grace: float) -> None:
        """Say goodbye (the others drop this gateway's users after the grace period); alone, store
        their leaves here. Waits at most ``grace`` seconds for the stream."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        nc = self._nc
        if nc is not None and nc.is_connected:
            with contextlib.suppress(Exception):
                await nc.publish(p.BYE_PREFIX + self.id, p.encoder.encode(p.Bye(gateway=self.id)))
            if all(state is PeerState.LEAVING for state in self._roster.peers.values()):
                now_ms = int(time.time() * 1000)
                for topic, user in self._tracker.announced():
                    self._store(Change(Kind.LEAVE, topic, user, 0, self.id), now_ms)
                self._drained.clear()
                self._queued.set()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._drained.wait(), grace)
        self._nc = None
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=1.0)
