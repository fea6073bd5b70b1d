"""The gateway's client side: WebSocket connections and the work their sessions ask for.

Everything protocol-related is decided by :class:`~herald_gateway.session.Session`;
:class:`Gateway` performs its actions. Frames and closes go to the socket; interest
changes, replays, publishes and membership questions go to the NATS side
(:class:`~herald_gateway.natsside.NatsSide`), which hands live messages to
:class:`~herald_gateway.delivery.Delivery`, encoded once per NATS message and shared by
every recipient.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine
from functools import partial
from typing import Any
from urllib.parse import urlsplit

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from herald_common import nodes, wire
from herald_common.beacon import Beacon
from herald_common.config import Settings
from herald_common.errors import CloseCode, ErrorCode, HeraldError
from herald_common.tokens import TokenVerifier
from herald_common.topics import is_wildcard
from herald_gateway import clientip, fanout, observe
from herald_gateway.actions import (
    Action,
    AddInterest,
    AskMembership,
    AskPresence,
    BeginRecovery,
    Close,
    PublishTo,
    RemoveInterest,
    Replay,
    Send,
    Watch,
)
from herald_gateway.connection import ClientConnection, Socket
from herald_gateway.delivery import Delivery
from herald_gateway.hub import Interest
from herald_gateway.keepalive import Keepalive
from herald_gateway.limits import Counter, KeyedBuckets
from herald_gateway.metrics import Metrics
from herald_gateway.natsside import NatsSide
from herald_gateway.observe import ERROR_PREFIX, error_code
from herald_gateway.operator import OperatorAnswers, OperatorSide
from herald_gateway.presence import PresenceSide
from herald_gateway.recovery import Recovery, RecoveryState
from herald_gateway.session import Limits, Session

log = logging.getLogger("herald.gateway")


class Gateway:
    """The WebSocket connections and the work their sessions ask for; NATS work goes to :attr:`nats`."""

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
        self.listening = False
        self.connections: set[ClientConnection] = set()
        self.interest: Interest[ClientConnection] = Interest()
        #: one task pings every connection (websockets' per-connection keepalive is off)
        self.keepalive = Keepalive(settings.ping_interval, settings.ping_interval) if settings.ping_interval else None
        parallel = settings.gateway_parallel_writes
        self._writer = fanout.ParallelWriter(parallel) if parallel else None
        self._outbox = fanout.Outbox(writer=self._writer)
        self._tasks: set[asyncio.Task[None]] = set()
        self.metrics = Metrics(
            connections=lambda: len(self.connections),
            subscriptions=lambda: self.interest.total,
            nats_subscriptions=lambda: self.nats.subscriptions,
            tasks=lambda: len(asyncio.all_tasks()),
            nats_connected=lambda: 1.0 if self.nats.connected else 0.0,
            presence_entries=lambda: self.presence.entries,
            presence_gateways=lambda: self.presence.gateways,
        )
        self.delivery = Delivery(self.interest, self.metrics, self._overflow)
        self.nats = NatsSide(settings, self.delivery, self.metrics, on_revoked=self._revoke)
        self.presence = PresenceSide(settings, self.metrics, self._overflow)
        # One id per process for operators, the same as its presence id.
        answers = OperatorAnswers(self.presence.id, self.connections, self.interest)
        self.operator = OperatorSide(answers, self._operator_disconnect)
        self.beacon = Beacon("gateway", settings.node_heartbeat, self._beat_extras, node_id=self.presence.id)

    @property
    def ready(self) -> bool:
        """Accepting clients and connected to NATS (what ``/readyz`` reports)."""
        return self.listening and self.nats.ready

    def _overflow(self, conn: ClientConnection) -> None:
        if not conn.overflowed:
            conn.overflowed = True
            self.metrics.slow_consumers.inc()
            self._spawn(self._slow_consumer(conn))

    async def _slow_consumer(self, conn: ClientConnection) -> None:
        conn.drop_pending()
        await self.apply(conn, conn.session.on_slow_consumer())

    async def _beat_extras(self) -> dict[str, Any]:
        figures = nodes.GatewayFigures(
            connections=len(self.connections),
            subscriptions=self.interest.total,
            nats_subscriptions=self.nats.subscriptions,
            deliveries=int(self.metrics.deliveries.value),
        )
        return {"gateway": figures}

    async def _operator_disconnect(self, conn: ClientConnection) -> None:
        await self.apply(conn, conn.session.on_operator_disconnect())

    async def _revoke(self, channel: str, user: str | None) -> None:
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
        present: list[AddInterest] = []
        for action in actions:
            if isinstance(action, Send | Close):
                self._reply(conn, action)
            elif isinstance(action, AddInterest):
                self.interest.add(action.pattern, conn)
                if not is_wildcard(action.pattern):
                    present.append(action)
                await self.nats.interest_changed(action.pattern)
            elif isinstance(action, RemoveInterest):
                conn.recovering.pop(action.pattern, None)
                self.presence.untrack(conn, action.pattern)
                if self.interest.remove(action.pattern, conn):
                    await self.nats.interest_changed(action.pattern)
            elif isinstance(action, Watch):
                self.presence.track(conn, action.topic, action.presence)
            elif isinstance(action, AskPresence):
                self._reply(conn, Send(self.presence.answer(action.topic, action.frame_id)))
            elif isinstance(action, BeginRecovery):
                conn.recovering[action.pattern] = Recovery(self._settings.recovery_buffer)
            elif isinstance(action, Replay):
                await self._replay(conn, action)
            elif isinstance(action, AskMembership):
                self._spawn(self._ask_membership(conn, action))
            else:
                await self._publish(conn, action)
        # Presence counts a subscription once its ``subscribed`` (and any replay) went out, so
        # the socket's own join never comes first; one dropped meanwhile is not counted.
        for add in present:
            if conn in self.interest.members(add.pattern):
                self.presence.track(conn, add.pattern, add.presence)
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
            missed, last = await self.nats.read_missed(action.pattern, action.since)
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
            sent = await self.delivery.paced(conn, [action.lost_frame], replaying)
            last = 0
        else:
            sent = await self.delivery.paced(conn, [action.recovered_frame, *missed], replaying)
            self.metrics.deliveries.inc(max(0, sent - 1))
        if not replaying():
            return  # unsubscribed, closed, stalled or overflowed meanwhile
        del conn.recovering[action.pattern]
        for frame in recovery.finish(last):
            if not conn.push(frame):
                self._overflow(conn)
                return

    async def _ask_membership(self, conn: ClientConnection, ask: AskMembership) -> None:
        reply = await self.nats.membership(ask.channel_id, ask.user_id)
        await self.apply(conn, conn.session.on_membership(ask.request_id, reply))

    async def _publish(self, conn: ClientConnection, action: PublishTo) -> None:
        seq = await self.nats.publish(action.topic, action.data, action.publisher)
        if seq is None:
            await self.apply(conn, conn.session.on_publish_failed(action.frame_id))
            return
        await self.apply(conn, conn.session.on_published(action.topic, seq, action.frame_id))

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
        await self.beacon.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=1.0)
        await self.presence.close(self._settings.shutdown_grace)
        await self.nats.close()
        if self._writer is not None:
            self._writer.close()


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
