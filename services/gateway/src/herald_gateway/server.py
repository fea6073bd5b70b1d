"""The gateway's I/O shell: WebSocket server, NATS interest, fan-out, replay.

Everything protocol-related is decided by :class:`~herald_gateway.session.Session`;
this module performs its actions and turns NATS messages into ``message`` frames,
encoded once per NATS message and shared by every recipient.

Live messages arrive over core NATS, which does not redeliver. Each pattern's
subscription keeps a :class:`~herald_gateway.gapfill.Feed`: a message whose
``Nats-Last-Sequence`` names an undelivered predecessor first gets the missing ones
fetched from the stream and fanned out (:meth:`Gateway._fill`), and after a NATS
reconnect every pattern is replayed from the highest sequence it had delivered
(:meth:`Gateway._catch_up`), before its next live message and before ``/readyz`` says
ready again. What cannot be filled (too much, trimmed, stream recreated) closes the
affected clients with 4009, so they recover with ``since`` or reload; nothing is
skipped silently.

Replay for ``since`` (:meth:`Gateway._replay`) reads the TOPICS stream in batches
(:mod:`herald_common.history`), up to the stream's last sequence when the replay
began. A gap of more than ``HERALD_MAX_REPLAY`` messages is not
replayed (``recovered: false``): the client could not take it in one go anyway and
reloads over REST instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
import uuid
from collections.abc import Callable, Coroutine
from functools import partial
from typing import Any
from urllib.parse import urlsplit

import msgspec
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext
from nats.js.api import RawStreamMsg
from nats.js.errors import NotFoundError
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from herald_common import telemetry, wire
from herald_common.config import Settings
from herald_common.errors import CloseCode, ErrorCode, HeraldError
from herald_common.events import CHANNEL_ACCESS_REVOKED, EVENT_PREFIX, decode_event
from herald_common.health import HealthServer
from herald_common.history import Stored, TooManyError, read_range
from herald_common.natsconn import connect_until
from herald_common.rpc import MEMBERSHIP_SUBJECT, MembershipQuery, MembershipReply, query_encoder, reply_decoder
from herald_common.streams import TOPICS_STREAM, ensure_streams, epoch_of
from herald_common.tokens import TokenVerifier
from herald_common.topics import live_subject, matches, pattern_subject, subject_topic, topic_subject
from herald_gateway import clientip, fanout, observe
from herald_gateway.actions import (
    Action,
    AddInterest,
    AskMembership,
    BeginRecovery,
    Close,
    PublishTo,
    RemoveInterest,
    Replay,
    Send,
)
from herald_gateway.connection import ClientConnection, Socket
from herald_gateway.gapfill import Feed, Verdict
from herald_gateway.hub import Interest
from herald_gateway.keepalive import Keepalive
from herald_gateway.limits import Counter, KeyedBuckets
from herald_gateway.metrics import Metrics
from herald_gateway.observe import ERROR_PREFIX, FanOutTrace, error_code, stored_at
from herald_gateway.recovery import Recovery, RecoveryState, gap_is_covered
from herald_gateway.session import Limits, Session

log = logging.getLogger("herald.gateway")

MEMBERSHIP_TIMEOUT = 2.0
NATS_FLUSH_TIMEOUT = 2
REVOKED_SUBJECT = EVENT_PREFIX + CHANNEL_ACCESS_REVOKED
LISTEN_BACKLOG = 4096
GC_THRESHOLDS = (50_000, 20, 100)
#: Bytes a ``message`` frame adds around a stored body (header, topic, offset, epoch), for
#: sizing gap-fill rounds; an estimate is enough.
FRAME_OVERHEAD = 256


class Gateway:
    """Connections, their NATS interest, and the work the sessions ask for."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._verifier = TokenVerifier(settings)
        self._limits = Limits(
            auth_timeout=settings.auth_timeout,
            refresh_grace=settings.auth_refresh_grace,
            max_subscriptions=settings.max_subscriptions,
            frames_per_second=settings.frames_per_second,
            frames_burst=settings.frames_burst,
            rate_limited_frames_max=settings.rate_limited_frames_max,
        )
        self._connect_rate = KeyedBuckets(settings.connect_rate_per_ip, settings.connect_burst_per_ip)
        self.per_ip = Counter(settings.max_connections_per_ip)
        self.per_user = Counter(settings.max_connections_per_user)
        self._trusted = clientip.TrustedProxies.parse(settings.trusted_proxies)
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self.epoch = "0"
        self.listening = False
        self.connections: set[ClientConnection] = set()
        self.interest: Interest[ClientConnection] = Interest()
        #: one task pings every connection (websockets' per-connection keepalive is off)
        self.keepalive = Keepalive(settings.ping_interval, settings.ping_interval) if settings.ping_interval else None
        parallel = settings.gateway_parallel_writes
        self._writer = fanout.ParallelWriter(parallel) if parallel else None
        self._outbox = fanout.Outbox(writer=self._writer)
        self._nats_subs: dict[str, Subscription] = {}
        #: pattern -> where its live subscription stands, and the lock that serialises
        #: its deliveries (live, gap fills and catch-ups) so they stay in order.
        self._feeds: dict[str, Feed] = {}
        self._feed_locks: dict[str, asyncio.Lock] = {}
        #: The NATS reconnect count every feed has caught up with (``/readyz`` waits for it).
        self._caught_up = 0
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()
        self.metrics = Metrics(
            connections=lambda: len(self.connections),
            subscriptions=lambda: self.interest.total,
            nats_subscriptions=lambda: len(self._nats_subs),
            tasks=lambda: len(asyncio.all_tasks()),
            nats_connected=lambda: 1.0 if self._nc is not None and self._nc.is_connected else 0.0,
        )

    # NATS side

    @property
    def ready(self) -> bool:
        """Accepting clients and connected to NATS (what ``/readyz`` reports)."""
        nc = self._nc
        return self.listening and nc is not None and nc.is_connected and self._caught_up >= _reconnects(nc)

    async def attach(self, nc: Client) -> None:
        """Use ``nc`` from now on: make sure the streams exist, read the epoch, listen for revocations."""
        self._nc = nc
        self._js = nc.jetstream()
        await ensure_streams(self._js, self._settings)
        await self.refresh_epoch()
        await nc.subscribe(REVOKED_SUBJECT, cb=self._on_revoked)

    async def refresh_epoch(self) -> None:
        if self._js is None:
            return
        try:
            info = await self._js.stream_info(TOPICS_STREAM)
        except Exception:
            log.warning("could not read the %s stream; keeping epoch %s", TOPICS_STREAM, self.epoch, exc_info=True)
            return
        epoch = epoch_of(info)
        if epoch != self.epoch:
            log.info("topics epoch is %s", epoch)
        self.epoch = epoch

    async def _reconcile(self, pattern: str) -> None:
        """Make the NATS subscription for ``pattern`` exist iff some connection holds it."""
        assert self._nc is not None
        async with self._lock:
            wanted = pattern in self.interest
            sub = self._nats_subs.get(pattern)
            try:
                if wanted and sub is None:
                    feed, lock = self._new_feed(pattern)
                    async with lock:  # live messages wait until the feed knows where it starts
                        cb = partial(self._on_live, pattern)
                        self._nats_subs[pattern] = await self._nc.subscribe(live_subject(pattern), cb=cb)
                        # The server has the interest once the flush returns, so the client's
                        # ``subscribed`` (sent after this) means nothing later is missed.
                        await self._nc.flush(NATS_FLUSH_TIMEOUT)
                        await self._start_feed(feed)
                elif not wanted and sub is not None:
                    del self._nats_subs[pattern]
                    self._feeds.pop(pattern, None)
                    self._feed_locks.pop(pattern, None)
                    await sub.unsubscribe()
            except Exception:
                # The client library re-sends its subscriptions after a reconnect.
                log.warning("nats subscription change for a pattern failed", exc_info=True)

    def _new_feed(self, pattern: str) -> tuple[Feed, asyncio.Lock]:
        assert self._nc is not None
        feed = Feed(0, self._settings.gap_subjects, epoch=self.epoch, generation=_reconnects(self._nc))
        lock = asyncio.Lock()
        self._feeds[pattern] = feed
        self._feed_locks[pattern] = lock
        return feed, lock

    async def _start_feed(self, feed: Feed) -> None:
        """Start tracking from the stream's end, read once the subscription is live.

        Reading it after subscribing means everything stored later arrives live (or is
        found missing by the gap check), while what was stored before, which the client's
        ``subscribed`` does not promise, is never filled in behind a ``since`` replay that
        already sent it.
        """
        floor, epoch = max((f.high for f in self._feeds.values()), default=0), self.epoch
        if self._js is not None:
            try:
                info = await self._js.stream_info(TOPICS_STREAM)
                floor, epoch = info.state.last_seq, epoch_of(info)
            except Exception as exc:
                log.warning("could not read the stream end for a new pattern: %s", type(exc).__name__)
        feed.restart(floor, epoch)

    async def _on_live(self, pattern: str, msg: Msg) -> None:
        """One live message: fill what its subject missed, drop it if already delivered, fan it out.

        nats-py awaits this callback before the subscription's next message, so waiting
        here (for the lock or a fetch) parks later messages of the pattern in order.
        """
        feed = self._feeds.get(pattern)
        lock = self._feed_locks.get(pattern)
        if feed is None or lock is None:
            return
        async with lock:
            if self._feeds.get(pattern) is not feed:
                return
            behind = self._nc is not None and feed.generation != _reconnects(self._nc)
            if behind and not await self._catch_up(pattern, feed):
                return  # not delivered: the retried catch-up replays it
            try:
                headers = msg.headers or {}
                seq = int(headers["Nats-Sequence"])
                last_raw = headers.get("Nats-Last-Sequence")
                last_seq = int(last_raw) if last_raw else None
            except (KeyError, ValueError):
                self.fan_out(pattern, msg.subject, msg.headers, msg.data)  # counts and logs the drop
                return
            seen = feed.observe(msg.subject, seq, last_seq)
            if seen.verdict is Verdict.DUPLICATE:
                return
            if seen.verdict is Verdict.GAP:
                await self._fill(pattern, feed, msg.subject, seen.after, seq, last_seq)
            self.fan_out(pattern, msg.subject, msg.headers, msg.data)
            feed.delivered(msg.subject, seq)

    async def _fill(self, pattern: str, feed: Feed, subject: str, after: int, seq: int, last_seq: int | None) -> None:
        """Fan out the stored messages of ``subject`` in ``(after, seq)``, or close their holders."""
        assert self._js is not None
        topic = subject_topic(subject)
        try:
            stored = await read_range(self._js, topic_subject(topic), after, seq - 1, self._settings.max_replay)
        except TooManyError:
            stored = None
        except Exception as exc:
            log.warning("filling a gap failed: %s", type(exc).__name__)
            stored = None
        # The message the header names must be among them: if it is gone (trimmed or
        # deleted), so may be others, and skipping them silently is not an option.
        if stored is None or (last_seq is not None and (not stored or stored[-1].seq != last_seq)):
            log.warning("a gap on a live subscription could not be filled; closing its holders")
            self._drop_holders(pattern, topic)
            return
        self.metrics.gaps_filled.inc(len(stored))
        await self._fan_out_stored(pattern, feed, stored)

    async def _fan_out_stored(self, pattern: str, feed: Feed, stored: list[Stored]) -> None:
        """Fan out stored messages (a gap fill or catch-up) at the pace of the slowest reader.

        Sent in rounds of at most a quarter of the byte bound: before each round, holders
        without room for it are waited for (all at once) instead of being overflowed, so a
        large fill reaches clients that keep reading; one that stalls is closed with 4009.
        The pattern's live messages wait meanwhile (the caller holds its lock).
        """
        budget = max(1, self._settings.max_pending_bytes // 4)
        start = 0
        while start < len(stored):
            end, size = start, 0
            while end < len(stored) and (end == start or size + len(stored[end].data) <= budget):
                size += len(stored[end].data) + FRAME_OVERHEAD
                end += 1
            await self._room_among(pattern, size)
            for m in stored[start:end]:
                subject = live_subject(subject_topic(m.subject))
                if m.seq <= feed.known(subject):
                    continue
                self.fan_out(pattern, subject, {"Nats-Sequence": str(m.seq)}, m.data)
                feed.delivered(subject, m.seq)
            start = end

    async def _room_among(self, pattern: str, size: int) -> None:
        """Wait for the live holders of ``pattern`` without room for ``size`` bytes; overflow the stalled."""
        members = self.interest.members(pattern)
        short = [c for c in members if pattern not in c.recovering and c.open and not c.has_room(size)]
        if not short:
            return
        roomy = await asyncio.gather(*(c.room_for(size) for c in short))
        for conn, ok in zip(short, roomy, strict=True):
            if not ok and conn.open:
                self._overflow(conn)

    def _drop_holders(self, pattern: str, topic: str | None) -> None:
        """Close (4009) the holders of ``pattern`` (that receive ``topic`` through it, if given)."""
        for conn in list(self.interest.members(pattern)):
            if topic is None or conn.session.wants(pattern, topic):
                self._overflow(conn)

    async def _catch_up(self, pattern: str, feed: Feed) -> bool:
        """Replay what ``pattern`` missed while NATS was away; the caller holds its lock.

        False when the stream could not be read (nothing changed; try again later).
        """
        assert self._nc is not None and self._js is not None
        generation = _reconnects(self._nc)
        try:
            info = await self._js.stream_info(TOPICS_STREAM)
            epoch, last = epoch_of(info), info.state.last_seq
            if epoch != feed.epoch:
                # The stream was recreated: offsets restarted, nobody can be caught up.
                log.warning("topics epoch changed while NATS was away; closing the holders of a pattern")
                feed.restart(last, epoch)
                self._drop_holders(pattern, None)
            else:
                try:
                    stored = await read_range(
                        self._js, pattern_subject(pattern), feed.high, last, self._settings.max_replay
                    )
                except TooManyError:
                    log.warning("too much was missed while NATS was away; closing the holders of a pattern")
                    self._drop_holders(pattern, None)
                else:
                    self.metrics.gaps_filled.inc(len(stored))
                    await self._fan_out_stored(pattern, feed, stored)
                feed.caught_up(last)
        except Exception as exc:
            log.warning("catching up after a NATS reconnect failed: %s", type(exc).__name__)
            return False
        if epoch != self.epoch:
            self.epoch = epoch
        feed.generation = generation
        self.metrics.catchups.inc()
        return True

    async def on_nats_reconnected(self) -> None:
        """NATS is back: catch every pattern up in the background (``/readyz`` waits for it)."""
        self._spawn(self._catch_up_all())

    async def _catch_up_all(self) -> None:
        assert self._nc is not None
        await self.refresh_epoch()
        delay = 0.25
        while self._nc.is_connected:
            generation = _reconnects(self._nc)
            behind = [p for p, f in self._feeds.items() if f.generation != generation]
            for pattern in behind:
                feed, lock = self._feeds.get(pattern), self._feed_locks.get(pattern)
                if feed is None or lock is None:
                    continue
                async with lock:
                    if self._feeds.get(pattern) is feed and feed.generation != generation:
                        await self._catch_up(pattern, feed)
            if all(f.generation == generation for f in self._feeds.values()):
                self._caught_up = max(self._caught_up, generation)
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)

    def fan_out(self, pattern: str, subject: str, headers: dict[str, str] | None, data: bytes) -> int:
        """Deliver one live message to the local holders of ``pattern``; returns how many got it."""
        members = self.interest.members(pattern)
        if not members:
            return 0
        try:
            topic = subject_topic(subject)
            offset = int((headers or {})["Nats-Sequence"])
            publication = wire.decode_publication(data)
        except (KeyError, ValueError, msgspec.DecodeError):
            self.metrics.dropped.inc()
            log.warning("dropped a live message that is not a valid publication")
            return 0
        payload = wire.encode(
            wire.Message(
                topic=topic,
                data=publication.data,
                offset=offset,
                epoch=self.epoch,
                event=publication.event,
                publisher=publication.publisher,
            )
        )
        # Tracing off: one flag check, no header read, no span.
        span = FanOutTrace.start(pattern, subject, offset, headers) if telemetry.tracing_enabled else None
        delivered, slow = fanout.fan_out(members, pattern, topic, offset, payload)
        if span is not None:
            span.end(delivered)
        for conn in slow:
            self._overflow(conn)
        self.metrics.deliveries.inc(delivered)
        if delivered and headers:
            stored = stored_at(headers)
            if stored is not None:
                self.metrics.latency.observe(max(0.0, time.time() - stored))
        return delivered

    def _overflow(self, conn: ClientConnection) -> None:
        if not conn.overflowed:
            conn.overflowed = True
            self.metrics.slow_consumers.inc()
            self._spawn(self._slow_consumer(conn))

    async def _slow_consumer(self, conn: ClientConnection) -> None:
        conn.drop_pending()
        await self.apply(conn, conn.session.on_slow_consumer())

    async def _on_revoked(self, msg: Msg) -> None:
        try:
            data = decode_event(msg.data).data
        except (msgspec.DecodeError, ValueError):
            log.warning("ignored a malformed %s event", CHANNEL_ACCESS_REVOKED)
            return
        channel = data.get("channelId")
        user = data.get("userId")
        if not isinstance(channel, str) or not (user is None or isinstance(user, str)):
            log.warning("ignored a %s event without channelId/userId", CHANNEL_ACCESS_REVOKED)
            return
        for conn in list(self.interest.members(f"messages.channel.{channel}")):
            if user is None or conn.session.user_id == user:
                await self.apply(conn, conn.session.on_access_revoked(channel))

    # performing actions

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _reply(self, conn: ClientConnection, action: Send | Close) -> None:
        if isinstance(action, Close):
            conn.push_control(action)
            return
        if action.frame.startswith(ERROR_PREFIX):
            self._count_error(action.frame)
            observe.log_refusal(conn, action.frame)
        if not conn.push_control(action.frame):
            self._overflow(conn)

    def _on_control(self, conn: ClientConnection, frames: int) -> None:
        """Pings or pongs arrived and ``websockets`` already wrote the pongs: rate and byte bound."""
        for action in conn.session.on_control(frames, time.time()):
            if isinstance(action, Send | Close):
                self._reply(conn, action)
        if conn.over_bound:
            if conn.closing or conn.overflowed:
                # Told to go and still flooding: every read adds pongs behind the unread
                # ones, so waiting for the closing handshake would let them pile up.
                conn.cut(int(CloseCode.SLOW_CONSUMER))
            else:
                self._overflow(conn)

    async def apply(self, conn: ClientConnection, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, Send | Close):
                self._reply(conn, action)
            elif isinstance(action, AddInterest):
                self.interest.add(action.pattern, conn)
                await self._reconcile(action.pattern)
            elif isinstance(action, RemoveInterest):
                conn.recovering.pop(action.pattern, None)
                if self.interest.remove(action.pattern, conn):
                    await self._reconcile(action.pattern)
            elif isinstance(action, BeginRecovery):
                conn.recovering[action.pattern] = Recovery(self._settings.recovery_buffer)
            elif isinstance(action, Replay):
                await self._replay(conn, action)
            elif isinstance(action, AskMembership):
                self._spawn(self._ask_membership(conn, action))
            else:
                await self._publish(conn, action)
        self._arm_timer(conn)

    def _count_error(self, frame: bytes) -> None:
        code = error_code(frame)
        self.metrics.refused_frames.labels(reason=code).inc()
        if code == ErrorCode.UNAUTHORIZED.value:
            self.metrics.auth_failures.inc()

    async def _replay(self, conn: ClientConnection, action: Replay) -> None:
        """Send ``subscribed`` (recovered or not), the missed messages, then go live."""
        recovery = conn.recovering.get(action.pattern)
        if recovery is None or recovery.state is not RecoveryState.RECOVERING:
            return
        try:
            missed, last = await self._read_missed(action)
        except Exception as exc:
            log.warning("replay failed: %s", type(exc).__name__)
            missed, last = None, 0
        if conn.recovering.get(action.pattern) is not recovery or recovery.state is not RecoveryState.RECOVERING:
            return  # unsubscribed, closed or overflowed meanwhile

        def replaying() -> bool:
            return (
                conn.recovering.get(action.pattern) is recovery
                and recovery.state is RecoveryState.RECOVERING
                and not conn.overflowed
                and conn.open
            )

        if missed is None:
            sent = await self._paced(conn, [action.lost_frame], replaying)
            last = 0
        else:
            sent = await self._paced(conn, [action.recovered_frame, *missed], replaying)
            self.metrics.deliveries.inc(max(0, sent - 1))
        if not replaying():
            return  # unsubscribed, closed, stalled or overflowed meanwhile
        del conn.recovering[action.pattern]
        for frame in recovery.finish(last):
            if not conn.push(frame):
                self._overflow(conn)
                return

    async def _paced(self, conn: ClientConnection, payloads: list[bytes], going: Callable[[], bool]) -> int:
        """Send ``payloads`` at the socket's pace (while ``going()``); how many were sent.

        A payload that does not fit waits for the client to read (:meth:`ClientConnection.room_for`)
        instead of overflowing the byte bound, so a large replay reaches a client that keeps
        reading; one that stalls is closed with 4009.
        """
        for sent, payload in enumerate(payloads):
            if not going():
                return sent
            frame = fanout.text_frame(payload)
            if conn.deliver(frame):
                continue
            if not await conn.room_for(len(frame)) or not going() or not conn.deliver(frame):
                if going():
                    self._overflow(conn)
                return sent
        return len(payloads)

    async def _read_missed(self, action: Replay) -> tuple[list[bytes] | None, int]:
        """The encoded missed messages and the last stream sequence they cover.

        None when they cannot all be replayed (other epoch, trimmed history, too many).
        """
        assert self._js is not None
        info = await self._js.stream_info(TOPICS_STREAM)
        epoch = epoch_of(info)
        self.epoch = epoch
        if action.since.epoch != epoch:
            return None, 0
        first, last = info.state.first_seq, info.state.last_seq
        offset = action.since.offset
        if offset > last:
            return None, 0
        try:
            stored = await read_range(
                self._js, pattern_subject(action.pattern), offset, last, self._settings.max_replay
            )
        except TooManyError:
            return None, 0
        subjects = {m.subject for m in stored}
        anchor_matches = False
        oldest: dict[str, int] = {}
        if offset > 0:
            anchor = await self._stored(seq=offset)
            anchor_matches = anchor is not None and matches(action.pattern, subject_topic(anchor.subject or ""))
            for subject in subjects:
                head = await self._stored(seq=1, subject=subject)
                if head is not None and head.seq is not None:
                    oldest[subject] = head.seq
        covered = gap_is_covered(
            offset=offset,
            first_seq=first,
            last_seq=last,
            anchor_matches=anchor_matches,
            oldest_by_subject=oldest,
            replayed_subjects=subjects,
        )
        if not covered:
            return None, 0
        return [f for f in (self._replay_frame(m, epoch) for m in stored) if f is not None], last

    async def _stored(self, seq: int, subject: str | None = None) -> RawStreamMsg | None:
        """The message at ``seq`` (or, with ``subject``, the first on it from ``seq``)."""
        assert self._js is not None
        try:
            if subject is None:
                return await self._js.get_msg(TOPICS_STREAM, seq=seq)
            return await self._js.get_msg(TOPICS_STREAM, seq=seq, subject=subject, next=True)
        except NotFoundError:
            return None

    def _replay_frame(self, msg: Stored, epoch: str) -> bytes | None:
        try:
            topic = subject_topic(msg.subject)
            publication = wire.decode_publication(msg.data)
        except (ValueError, msgspec.DecodeError):
            self.metrics.dropped.inc()
            return None
        return wire.encode(
            wire.Message(
                topic=topic,
                data=publication.data,
                offset=msg.seq,
                epoch=epoch,
                event=publication.event,
                publisher=publication.publisher,
            )
        )

    async def _ask_membership(self, conn: ClientConnection, ask: AskMembership) -> None:
        assert self._nc is not None
        reply: MembershipReply | None = None
        query = query_encoder.encode(MembershipQuery(channel_id=ask.channel_id, user_id=ask.user_id))
        try:
            answer = await self._nc.request(MEMBERSHIP_SUBJECT, query, timeout=MEMBERSHIP_TIMEOUT)
            reply = reply_decoder.decode(answer.data)
        except Exception as exc:
            log.warning("membership lookup failed: %s", type(exc).__name__)
        await self.apply(conn, conn.session.on_membership(ask.request_id, reply))

    async def _publish(self, conn: ClientConnection, action: PublishTo) -> None:
        assert self._js is not None
        msg_id = uuid.uuid4().hex
        body = wire.encode(wire.Publication(data=msgspec.Raw(action.data), id=msg_id, publisher=action.publisher))
        try:
            ack = await self._js.publish(topic_subject(action.topic), body, headers={"Nats-Msg-Id": msg_id})
        except Exception as exc:
            log.warning("publishing from a client failed: %s", type(exc).__name__)
            await self.apply(conn, conn.session.on_publish_failed(action.frame_id))
            return
        await self.apply(conn, conn.session.on_published(action.topic, int(ack.seq), action.frame_id))

    def _arm_timer(self, conn: ClientConnection) -> None:
        if conn.timer is not None:
            conn.timer.cancel()
            conn.timer = None
        deadline = conn.session.deadline
        if deadline is not None:
            delay = max(0.0, deadline - time.time())
            conn.timer = asyncio.get_running_loop().call_later(delay, self._on_timer, conn)

    def _on_timer(self, conn: ClientConnection) -> None:
        conn.timer = None
        self._spawn(self.apply(conn, conn.session.on_timer(time.time())))

    # WebSocket side

    def process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        if urlsplit(request.path).path != self._settings.gateway_path:
            return connection.respond(404, "not found\n")
        if not self._connect_rate.take(_client_ip(connection, self._trusted), time.monotonic()):
            self.metrics.refused.labels(reason="connect_rate").inc()
            return connection.respond(429, "too many connection attempts\n")
        return None

    async def handler(self, ws: ServerConnection) -> None:
        ip = _client_ip(ws, self._trusted)
        if not self.per_ip.acquire(ip):
            self.metrics.refused.labels(reason="per_ip").inc()
            log.debug("connection refused: too many from this address", extra={"client_ip": ip})
            await ws.close(int(CloseCode.POLICY_LIMIT), "too many connections from this address")
            self.metrics.disconnects.labels(code=str(int(CloseCode.POLICY_LIMIT))).inc()
            return
        try:
            await self._serve(ws, ip)
        finally:
            self.per_ip.release(ip)

    async def _prefetch_key(self, text: str) -> None:
        """Fetch the JWKS key an ``auth`` frame's token names, so the session can verify it.

        The session is sans-I/O and verifies synchronously from the cache; only this shell
        may wait on the network.
        """
        if '"auth"' not in text:
            return
        try:
            frame = wire.decode_client_frame(text)
        except HeraldError:
            return  # the session answers the malformed frame itself
        if isinstance(frame, wire.Auth):
            await self._verifier.prefetch(frame.token)

    async def _serve(self, ws: ServerConnection, ip: str) -> None:
        session = Session(self._verifier, self._limits, time.time(), self.per_user)
        conn = ClientConnection(ws, session, self._settings.max_pending_bytes, self._outbox)
        if isinstance(ws, Socket):
            ws.on_control = partial(self._on_control, conn)
        conn.client_ip = ip
        opened = time.monotonic()
        log.debug("connection opened", extra={"client_ip": ip})
        self.connections.add(conn)
        if self.keepalive is not None:
            self.keepalive.add(conn)
        self._arm_timer(conn)
        try:
            async for message in ws:
                now = time.time()
                if isinstance(message, str):
                    if self._verifier.uses_jwks:
                        await self._prefetch_key(message)
                    actions = conn.session.on_text(message, now)
                else:
                    actions = conn.session.on_binary(message, now)
                await self.apply(conn, actions)
        except ConnectionClosed:
            pass
        finally:
            await self.apply(conn, conn.session.on_disconnect())
            if isinstance(ws, Socket):
                ws.on_control = None  # no reference cycle: the connection is freed as it goes
            if conn.timer is not None:
                conn.timer.cancel()
            await conn.closed()
            self.connections.discard(conn)
            # A close the gateway decided counts under its code, even when the client never
            # read it (a slow consumer's socket is aborted behind its unread backlog).
            code = conn.close_code if conn.close_code is not None else ws.close_code
            self.metrics.disconnects.labels(code=str(code) if code is not None else "none").inc()
            observe.log_close(conn, code, opened)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=1.0)
        if self._writer is not None:
            self._writer.close()


def _reconnects(nc: Client) -> int:
    """How many times ``nc`` reconnected: counted before it re-subscribes, so a live
    message received after a reconnect always sees the new count."""
    return int(nc.stats["reconnects"])


def _tune_gc() -> None:
    """Collect cycles far less often than Python's default (700, 10, 10).

    Each connection keeps a few hundred long-lived objects; with the default thresholds a
    burst of connects triggers collections that walk all of them again and again (the
    profile showed them dominating accepts). Startup objects are moved out of the
    collector's sight for good.
    """
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def _client_ip(connection: ServerConnection, trusted: clientip.TrustedProxies) -> str:
    """The address the per-IP limits count: the peer's, or the client a trusted proxy names.

    Read from the handshake request, which stays the same for the connection's life, so
    the handshake rate and the connection count agree on it.
    """
    address = connection.remote_address
    peer = str(address[0]) if isinstance(address, tuple) and address else "unknown"
    request = connection.request
    if not trusted or request is None:
        return peer
    return clientip.client_address(peer, request.headers.get_all(clientip.FORWARDED_FOR), trusted)


async def run(settings: Settings, stop: asyncio.Event) -> None:
    """Serve until ``stop`` is set, then close every client with 1001 and drain NATS."""
    gateway = Gateway(settings)
    health: HealthServer | None = None
    if settings.gateway_metrics_port:
        health = HealthServer(gateway.metrics, lambda: gateway.ready)
        await health.start(settings.gateway_host, settings.gateway_metrics_port)

    nc = await connect_until(settings, "gateway", stop, on_reconnected=gateway.on_nats_reconnected)
    if nc is None:
        if health is not None:
            await health.close()
        return
    server: Server | None = None
    pinger: asyncio.Task[None] | None = None
    try:
        await gateway.attach(nc)
        _tune_gc()
        server = await serve(
            gateway.handler,
            settings.gateway_host,
            settings.gateway_port,
            process_request=gateway.process_request,
            create_connection=Socket,
            compression=None,
            max_size=settings.max_frame_bytes,
            # Keepalive pings come from one gateway-wide task (keepalive.py), not a task
            # per connection.
            ping_interval=None,
            ping_timeout=None,
            close_timeout=min(2.0, settings.shutdown_grace),
            # Clients send small control frames: a short incoming queue is plenty, and
            # outgoing frames bypass websockets' writes (see connection.py).
            max_queue=4,
            reuse_port=settings.gateway_reuse_port or None,
            # asyncio's default of 100 overflows under a burst of connects (each dropped
            # SYN costs the client a 1 s retransmit); the kernel caps it at somaxconn.
            backlog=LISTEN_BACKLOG,
        )
        gateway.listening = True
        pinger = asyncio.create_task(gateway.keepalive.run(), name="keepalive") if gateway.keepalive else None
        log.info(
            "gateway listening",
            extra={"host": settings.gateway_host, "port": settings.gateway_port, "path": settings.gateway_path},
        )
        await stop.wait()
    finally:
        gateway.listening = False
        if pinger is not None:
            pinger.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pinger
        if server is not None:
            server.close(code=1001, reason="server shutting down")
            try:
                await asyncio.wait_for(server.wait_closed(), settings.shutdown_grace)
            except TimeoutError:
                log.warning("some connections did not close in time")
        await gateway.close()
        if gateway.keepalive is not None:
            await gateway.keepalive.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(nc.drain(), settings.shutdown_grace)
        if health is not None:
            await health.close()
