"""The gateway's I/O shell: WebSocket server, NATS interest, fan-out, replay.

Everything protocol-related is decided by :class:`~herald_gateway.session.Session`;
this module performs its actions and turns NATS messages into ``message`` frames,
encoded once per NATS message and shared by every recipient.

Replay for ``since`` (:meth:`Gateway._replay`) reads the TOPICS stream one message at a
time with "next message matching the filter" gets, up to the stream's last sequence
when the replay began. A gap of more than ``HERALD_MAX_PENDING_FRAMES`` messages is not
replayed (``recovered: false``): the client could not take it in one go anyway and
reloads over REST instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Coroutine
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

from herald_common import wire
from herald_common.config import Settings
from herald_common.errors import CloseCode
from herald_common.events import CHANNEL_ACCESS_REVOKED, EVENT_PREFIX, decode_event
from herald_common.natsconn import connect_until
from herald_common.rpc import MEMBERSHIP_SUBJECT, MembershipQuery, MembershipReply, query_encoder, reply_decoder
from herald_common.streams import TOPICS_STREAM, ensure_streams, epoch_of
from herald_common.tokens import TokenVerifier
from herald_common.topics import live_subject, matches, pattern_subject, subject_topic, topic_subject
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
from herald_gateway.connection import ClientConnection
from herald_gateway.health import HealthServer
from herald_gateway.hub import Interest
from herald_gateway.limits import Counter, KeyedBuckets
from herald_gateway.metrics import Metrics
from herald_gateway.recovery import Recovery, RecoveryState, gap_is_covered
from herald_gateway.session import Limits, Session

log = logging.getLogger("herald.gateway")

MEMBERSHIP_TIMEOUT = 2.0
NATS_FLUSH_TIMEOUT = 2
REVOKED_SUBJECT = EVENT_PREFIX + CHANNEL_ACCESS_REVOKED


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
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self.epoch = "0"
        self.listening = False
        self.connections: set[ClientConnection] = set()
        self.interest: Interest[ClientConnection] = Interest()
        self._nats_subs: dict[str, Subscription] = {}
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()
        self.metrics = Metrics(
            connections=lambda: len(self.connections),
            subscriptions=lambda: self.interest.total,
            nats_subscriptions=lambda: len(self._nats_subs),
            tasks=lambda: len(asyncio.all_tasks()),
        )

    # NATS side

    @property
    def ready(self) -> bool:
        """Accepting clients and connected to NATS (what ``/readyz`` reports)."""
        return self.listening and self._nc is not None and self._nc.is_connected

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
                    cb = partial(self._on_live, pattern)
                    self._nats_subs[pattern] = await self._nc.subscribe(live_subject(pattern), cb=cb)
                    # The server has the interest once the flush returns, so the client's
                    # ``subscribed`` (sent after this) means nothing later is missed.
                    await self._nc.flush(NATS_FLUSH_TIMEOUT)
                elif not wanted and sub is not None:
                    del self._nats_subs[pattern]
                    await sub.unsubscribe()
            except Exception:
                # The client library re-sends its subscriptions after a reconnect.
                log.warning("nats subscription change for a pattern failed", exc_info=True)

    async def _on_live(self, pattern: str, msg: Msg) -> None:
        self.fan_out(pattern, msg.subject, msg.headers, msg.data)

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
        frame = wire.encode(
            wire.Message(topic=topic, data=publication.data, offset=offset, epoch=self.epoch, event=publication.event)
        )
        delivered = 0
        for conn in members:
            if not conn.session.wants(pattern, topic):
                continue
            recovery = conn.recovering.get(pattern)
            if recovery is not None:
                if recovery.state is RecoveryState.RECOVERING and not recovery.park(offset, frame):
                    self._overflow(conn)
                continue
            if conn.push(frame):
                delivered += 1
            else:
                self._overflow(conn)
        self.metrics.deliveries.inc(delivered)
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

    async def apply(self, conn: ClientConnection, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, Send):
                conn.push_control(action.frame)
            elif isinstance(action, Close):
                conn.push_control(action)
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
        if missed is None:
            conn.push_control(action.lost_frame)
            last = 0
        else:
            conn.push_control(action.recovered_frame)
            for frame in missed:
                if not conn.push(frame):
                    self._overflow(conn)
                    return
            self.metrics.deliveries.inc(len(missed))
        del conn.recovering[action.pattern]
        for frame in recovery.finish(last):
            if not conn.push(frame):
                self._overflow(conn)
                return

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
        stored: list[RawStreamMsg] = []
        seq = offset + 1
        filter_subject = pattern_subject(action.pattern)
        while seq <= last:
            try:
                msg = await self._js.get_msg(TOPICS_STREAM, seq=seq, subject=filter_subject, next=True)
            except NotFoundError:
                break
            if msg.seq is None or msg.seq > last:
                break
            stored.append(msg)
            if len(stored) > self._settings.max_pending_frames:
                return None, 0
            seq = msg.seq + 1
        subjects = {m.subject for m in stored if m.subject is not None}
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

    def _replay_frame(self, msg: RawStreamMsg, epoch: str) -> bytes | None:
        try:
            topic = subject_topic(msg.subject or "")
            publication = wire.decode_publication(msg.data or b"")
        except (ValueError, msgspec.DecodeError):
            self.metrics.dropped.inc()
            return None
        assert msg.seq is not None
        return wire.encode(
            wire.Message(topic=topic, data=publication.data, offset=msg.seq, epoch=epoch, event=publication.event)
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
        body = wire.encode(wire.Publication(data=msgspec.Raw(action.data), id=msg_id))
        try:
            await self._js.publish(topic_subject(action.topic), body, headers={"Nats-Msg-Id": msg_id})
        except Exception as exc:
            log.warning("publishing from a client failed: %s", type(exc).__name__)
            await self.apply(conn, conn.session.on_publish_failed(action.frame_id))

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
        if not self._connect_rate.take(_client_ip(connection), time.monotonic()):
            self.metrics.refused.labels(reason="connect_rate").inc()
            return connection.respond(429, "too many connection attempts\n")
        return None

    async def handler(self, ws: ServerConnection) -> None:
        ip = _client_ip(ws)
        if not self.per_ip.acquire(ip):
            self.metrics.refused.labels(reason="per_ip").inc()
            await ws.close(int(CloseCode.POLICY_LIMIT), "too many connections from this address")
            self.metrics.disconnects.labels(code=str(int(CloseCode.POLICY_LIMIT))).inc()
            return
        try:
            await self._serve(ws)
        finally:
            self.per_ip.release(ip)

    async def _serve(self, ws: ServerConnection) -> None:
        session = Session(self._verifier, self._limits, time.time(), self.per_user)
        conn = ClientConnection(ws, session, self._settings.max_pending_frames, self._settings.max_pending_bytes)
        self.connections.add(conn)
        writer = asyncio.get_running_loop().create_task(conn.write_loop())
        self._arm_timer(conn)
        try:
            async for message in ws:
                now = time.time()
                if isinstance(message, str):
                    actions = conn.session.on_text(message, now)
                else:
                    actions = conn.session.on_binary(message, now)
                await self.apply(conn, actions)
        except ConnectionClosed:
            pass
        finally:
            await self.apply(conn, conn.session.on_disconnect())
            if conn.timer is not None:
                conn.timer.cancel()
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer
            self.connections.discard(conn)
            code = ws.close_code
            self.metrics.disconnects.labels(code=str(code) if code is not None else "none").inc()

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=1.0)


def _client_ip(connection: ServerConnection) -> str:
    address = connection.remote_address
    if isinstance(address, tuple) and address:
        return str(address[0])
    return "unknown"


async def run(settings: Settings, stop: asyncio.Event) -> None:
    """Serve until ``stop`` is set, then close every client with 1001 and drain NATS."""
    gateway = Gateway(settings)
    health: HealthServer | None = None
    if settings.gateway_metrics_port:
        health = HealthServer(gateway.metrics, lambda: gateway.ready)
        await health.start(settings.gateway_host, settings.gateway_metrics_port)

    nc = await connect_until(settings, "gateway", stop, on_reconnected=gateway.refresh_epoch)
    if nc is None:
        if health is not None:
            await health.close()
        return
    server: Server | None = None
    try:
        await gateway.attach(nc)
        server = await serve(
            gateway.handler,
            settings.gateway_host,
            settings.gateway_port,
            process_request=gateway.process_request,
            compression=None,
            max_size=settings.max_frame_bytes,
            ping_interval=settings.ping_interval or None,
            ping_timeout=settings.ping_interval or None,
            close_timeout=min(2.0, settings.shutdown_grace),
        )
        gateway.listening = True
        log.info(
            "gateway listening",
            extra={"host": settings.gateway_host, "port": settings.gateway_port, "path": settings.gateway_path},
        )
        await stop.wait()
    finally:
        gateway.listening = False
        if server is not None:
            server.close(code=1001, reason="server shutting down")
            try:
                await asyncio.wait_for(server.wait_closed(), settings.shutdown_grace)
            except TimeoutError:
                log.warning("some connections did not close in time")
        await gateway.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(nc.drain(), settings.shutdown_grace)
        if health is not None:
            await health.close()
