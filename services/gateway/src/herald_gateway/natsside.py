"""The gateway's NATS side: everything it does with its one NATS connection.

The client side (:mod:`herald_gateway.server`) calls only :class:`NatsSide`: it says
when a pattern's interest changed, asks for replays, socket publishes and membership
answers, and reads readiness. Messages come back through
:class:`~herald_gateway.holders.Holders`, once per message and pattern. Behind this
class the work is split by concept: :mod:`herald_gateway.feeds` keeps the live
subscriptions whole (gap fill, catch-up after a reconnect), :mod:`herald_gateway.stream`
reads the TOPICS stream.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import msgspec
import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from herald_common import wire
from herald_common.config import Settings
from herald_common.events import CHANNEL_ACCESS_REVOKED, EVENT_PREFIX, decode_event
from herald_common.rpc import MEMBERSHIP_SUBJECT, MembershipQuery, MembershipReply, query_encoder, reply_decoder
from herald_common.streams import ensure_streams
from herald_common.topics import topic_subject
from herald_gateway.feeds import Feeds
from herald_gateway.holders import Holders
from herald_gateway.metrics import Metrics
from herald_gateway.stream import TopicsStream

log = logging.getLogger("herald.gateway")

MEMBERSHIP_TIMEOUT = 2.0
#: Tries at declaring the streams at start (backing off to 2 s: about a minute in all).
STREAM_ATTEMPTS = 32
REVOKED_SUBJECT = EVENT_PREFIX + CHANNEL_ACCESS_REVOKED

#: ``on_revoked(channel_id, user_id)``: that user (everyone if None) lost access to the channel.
OnRevoked = Callable[[str, str | None], Awaitable[None]]


class NatsSide:
    """NATS for one gateway; does nothing until :meth:`attach` gives it a connection."""

    def __init__(self, settings: Settings, holders: Holders, metrics: Metrics, on_revoked: OnRevoked) -> None:
        self._settings = settings
        self._holders = holders
        self._metrics = metrics
        self._on_revoked = on_revoked
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._stream: TopicsStream | None = None
        self._feeds: Feeds | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def connected(self) -> bool:
        return self._nc is not None and self._nc.is_connected

    @property
    def ready(self) -> bool:
        """Connected, and every pattern caught up with the last reconnect."""
        return self.connected and self._feeds is not None and self._feeds.caught_up

    @property
    def subscriptions(self) -> int:
        """Distinct patterns subscribed to on NATS."""
        return len(self._feeds) if self._feeds is not None else 0

    async def attach(self, nc: Client) -> None:
        """Use ``nc`` from now on: make sure the streams exist, read the epoch, listen for revocations."""
        # All in place before the first await: a reconnect meanwhile already has feeds to catch up.
        self._nc = nc
        self._js = nc.jetstream()
        self._stream = TopicsStream(self._js, self._settings.max_replay, self._metrics)
        self._feeds = Feeds(nc, self._stream, self._holders, self._settings, self._metrics)
        await self._declare_streams()
        await self._stream.refresh_epoch()
        await nc.subscribe(REVOKED_SUBJECT, cb=self._revoked)

    async def _declare_streams(self) -> None:
        # A JetStream cluster that is still electing its leaders answers stream requests with
        # timeouts or "no responders" for a while; wait for it, as the api does.
        assert self._js is not None
        delay = 0.2
        for attempt in range(STREAM_ATTEMPTS):
            try:
                await ensure_streams(self._js, self._settings)
                return
            except (nats.errors.Error, TimeoutError) as exc:
                if attempt == STREAM_ATTEMPTS - 1:
                    raise
                log.warning("cannot declare streams yet: %s", type(exc).__name__)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)

    async def interest_changed(self, pattern: str) -> None:
        """Subscribe to ``pattern`` on NATS if it is held now, unsubscribe if not.

        Once a subscription was made, it returns only after the NATS server has it.
        """
        assert self._feeds is not None
        await self._feeds.reconcile(pattern)

    async def on_reconnected(self) -> None:
        """NATS is back: catch every pattern up in the background (:attr:`ready` waits for it)."""
        self._spawn(self._catch_up_all())

    async def _catch_up_all(self) -> None:
        assert self._stream is not None and self._feeds is not None
        await self._stream.refresh_epoch()
        await self._feeds.catch_up_all()

    async def read_missed(self, pattern: str, since: wire.Since) -> tuple[list[bytes] | None, int]:
        """The encoded messages on ``pattern`` after ``since``, and the stream sequence they run to.

        None when they cannot all be replayed (other epoch, trimmed history, too many).
        Raises the client library's errors when the stream cannot be read.
        """
        assert self._stream is not None
        return await self._stream.read_missed(pattern, since)

    async def publish(self, topic: str, data: bytes, publisher: str) -> int | None:
        """Store ``data`` (raw JSON) on ``topic`` as published by ``publisher``; its offset, None on failure."""
        assert self._js is not None
        msg_id = uuid.uuid4().hex
        body = wire.encode(wire.Publication(data=msgspec.Raw(data), id=msg_id, publisher=publisher))
        try:
            ack = await self._js.publish(topic_subject(topic), body, headers={"Nats-Msg-Id": msg_id})
        except Exception as exc:
            log.warning("publishing from a client failed: %s", type(exc).__name__)
            return None
        return int(ack.seq)

    async def membership(self, channel_id: str, user_id: str) -> MembershipReply | None:
        """The api's answer to whether ``user_id`` belongs to ``channel_id``; None without one."""
        assert self._nc is not None
        query = query_encoder.encode(MembershipQuery(channel_id=channel_id, user_id=user_id))
        try:
            answer = await self._nc.request(MEMBERSHIP_SUBJECT, query, timeout=MEMBERSHIP_TIMEOUT)
            return reply_decoder.decode(answer.data)
        except Exception as exc:
            log.warning("membership lookup failed: %s", type(exc).__name__)
            return None

    async def _revoked(self, msg: Msg) -> None:
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
        await self._on_revoked(channel, user)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        """Cancel the background work (catch-ups); the connection itself is the caller's to drain."""
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=1.0)
