"""What the operator endpoints do: read the node table, ask the gateways, merge their answers."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import msgspec
import nats.errors
from nats.aio.client import Client
from nats.js.errors import NotFoundError

from herald_api.domain.operators import schemas
from herald_api.gather import A, Gathered, gather
from herald_api.natslink import NatsLink
from herald_api.nodetable import NodeTable, Seen
from herald_common import nodes
from herald_common.errors import ErrorCode, HeraldError
from herald_common.streams import TOPICS_STREAM
from herald_common.topics import is_wildcard, topic_subject

log = logging.getLogger(__name__)

DEFAULT_PAGE = 50
MAX_PAGE = 200


def node_view(seen: Seen, now_wall: float, now_mono: float) -> schemas.Node:
    beat = seen.beat
    numbers = None
    if beat.gateway is not None:
        g = beat.gateway
        numbers = schemas.GatewayNumbers(
            connections=g.connections,
            subscriptions=g.subscriptions,
            nats_subscriptions=g.nats_subscriptions,
            deliveries=g.deliveries,
            deliveries_per_second=seen.deliveries_per_second,
        )
    view = schemas.Node(
        id=beat.id,
        service=beat.service,
        version=beat.version,
        host=beat.host,
        pid=beat.pid,
        started_at=beat.started,
        uptime=max(0.0, now_wall - beat.started),
        last_seen=max(0.0, now_mono - seen.at),
        nats="connected",
        nats_server=beat.nats_server,
        nats_reconnects=beat.nats_reconnects,
    )
    if numbers is not None:
        view.gateway = numbers
    if beat.role in ("active", "standby"):
        view.role = beat.role  # type: ignore[assignment]  # narrowed by the check above
    if beat.storage is not None:
        view.storage = beat.storage
    return view


def merge_topics(answers: list[nodes.TopicsAnswer]) -> dict[str, tuple[int, int]]:
    """pattern -> (subscribers summed over gateways, gateways holding it)."""
    merged: dict[str, tuple[int, int]] = {}
    for answer in answers:
        for held in answer.patterns:
            subscribers, gateways = merged.get(held.pattern, (0, 0))
            merged[held.pattern] = (subscribers + held.subscribers, gateways + 1)
    return merged


def page_of(names: list[str], after: str, limit: int) -> tuple[list[str], str | None]:
    """The sorted ``names`` after ``after``, ``limit`` of them, and the cursor of the next page."""
    ordered = sorted(n for n in names if n > after)
    page = ordered[:limit]
    return page, (page[-1] if len(ordered) > limit else None)


class OperatorService:
    def __init__(self, table: NodeTable, link: NatsLink, timeout: float, this: Callable[[], str]) -> None:
        self._table = table
        self._link = link
        self._timeout = timeout
        self._this = this

    def nodes(self) -> schemas.NodeList:
        wall, mono = time.time(), time.monotonic()
        return schemas.NodeList(nodes=[node_view(s, wall, mono) for s in self._table.live()], this=self._this())

    def _client(self) -> Client:
        if not self._link.connected:
            raise HeraldError(ErrorCode.UNAVAILABLE, "not connected to NATS")
        return self._link.client()

    async def _ask(self, subject: str, query: msgspec.Struct, decoder: msgspec.json.Decoder[A]) -> Gathered[A]:
        """Ask every live gateway ``query`` on ``subject``; the answers within the timeout."""
        payload = nodes.encoder.encode(query)
        return await gather(self._client(), subject, payload, decoder, self._table.gateway_ids(), self._timeout)

    async def topics(self, search: str, after: str, limit: int | None) -> schemas.TopicList:
        size = min(limit or DEFAULT_PAGE, MAX_PAGE)
        got = await self._ask(nodes.TOPICS_SUBJECT, nodes.TopicsQuery(search=search), nodes.topics_answer_decoder)
        merged = merge_topics(got.answers)
        page, next_after = page_of(list(merged), after, size)
        offsets = await asyncio.gather(*(self._last_offset(t) for t in page))
        items = [
            schemas.ActiveTopic(
                topic=t,
                pattern=is_wildcard(t),
                subscribers=merged[t][0],
                gateways=merged[t][1],
                last_offset=offset,
            )
            for t, offset in zip(page, offsets, strict=True)
        ]
        return schemas.TopicList(
            items=items,
            total=len(merged),
            next_after=next_after,
            missing_gateways=got.missing,
            truncated=any(a.truncated for a in got.answers),
        )

    async def _last_offset(self, topic: str) -> int | None:
        if is_wildcard(topic):
            return None
        try:
            stored = await self._link.jetstream().get_last_msg(TOPICS_STREAM, topic_subject(topic))
        except NotFoundError:
            return None
        except (nats.errors.Error, TimeoutError) as exc:
            log.warning("cannot read the last offset of a topic: %s", type(exc).__name__)
            return None
        return int(stored.seq) if stored.seq is not None else None

    async def connections(self, user_id: str) -> schemas.UserConnections:
        query = nodes.UserQuery(user_id=user_id)
        got = await self._ask(nodes.CONNECTIONS_SUBJECT, query, nodes.connections_answer_decoder)
        found = [
            schemas.Connection(
                id=s.id,
                gateway=answer.gateway,
                client_ip=s.client_ip,
                connected_at=s.connected,
                subscriptions=s.subscriptions,
            )
            for answer in got.answers
            for s in answer.sockets
        ]
        return schemas.UserConnections(user_id=user_id, connections=found, missing_gateways=got.missing)

    async def disconnect(self, user_id: str) -> schemas.Disconnected:
        query = nodes.UserQuery(user_id=user_id)
        got = await self._ask(nodes.DISCONNECT_SUBJECT, query, nodes.disconnect_answer_decoder)
        closed = sum(a.closed for a in got.answers)
        log.info("operator disconnect", extra={"user_id": user_id, "sockets": closed})
        return schemas.Disconnected(
            user_id=user_id, closed=closed, gateways=len(got.answers), missing_gateways=got.missing
        )
