"""The gateway's answers to operators (``herald.rpc.topics``, ``.connections``, ``.disconnect``).

Every gateway answers every request (no queue group): the api gathers the answers of the
gateways it knows from their heartbeats. Building an answer is plain code over the local
connections and the interest table (:class:`OperatorAnswers`); :class:`OperatorSide`
only subscribes and replies.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Collection
from typing import TypeVar

import msgspec
from nats.aio.client import Client
from nats.aio.msg import Msg

from herald_common import nodes
from herald_gateway.connection import ClientConnection
from herald_gateway.hub import Interest

log = logging.getLogger("herald.gateway")

#: Closes one socket for an operator (the session decides the frames: 4003).
Disconnect = Callable[[ClientConnection], Awaitable[None]]


class OperatorAnswers:
    """Answers built from what this gateway holds (no I/O)."""

    def __init__(
        self,
        gateway_id: str,
        connections: Collection[ClientConnection],
        interest: Interest[ClientConnection],
        limit: int = nodes.TOPICS_ANSWER_MAX,
    ) -> None:
        self.gateway_id = gateway_id
        self._connections = connections
        self._interest = interest
        self._limit = limit

    def topics(self, query: nodes.TopicsQuery) -> nodes.TopicsAnswer:
        needle = query.search.casefold()
        found = sorted(p for p in self._interest.patterns() if needle in p.casefold())
        held = [nodes.HeldPattern(p, len(self._interest.members(p))) for p in found[: self._limit]]
        return nodes.TopicsAnswer(gateway=self.gateway_id, patterns=held, truncated=len(found) > self._limit)

    def sockets_of(self, user_id: str) -> list[ClientConnection]:
        return [c for c in self._connections if c.session.user_id == user_id and not c.closing]

    def connections(self, query: nodes.UserQuery) -> nodes.ConnectionsAnswer:
        sockets = [
            nodes.SocketInfo(
                id=f"{self.gateway_id}-{c.serial}",
                client_ip=c.client_ip,
                connected=c.opened,
                subscriptions=sorted(c.session.subscriptions),
            )
            for c in sorted(self.sockets_of(query.user_id), key=lambda c: c.serial)
        ]
        return nodes.ConnectionsAnswer(gateway=self.gateway_id, sockets=sockets)


class OperatorSide:
    """Subscribes to the operator requests on :meth:`attach` and answers them."""

    def __init__(self, answers: OperatorAnswers, disconnect: Disconnect) -> None:
        self._answers = answers
        self._disconnect = disconnect

    async def attach(self, nc: Client) -> None:
        await nc.subscribe(nodes.TOPICS_SUBJECT, cb=self._topics)
        await nc.subscribe(nodes.CONNECTIONS_SUBJECT, cb=self._connections)
        await nc.subscribe(nodes.DISCONNECT_SUBJECT, cb=self._disconnect_user)

    async def _topics(self, msg: Msg) -> None:
        query = _decoded(nodes.topics_query_decoder, msg, "topics")
        if query is None:
            return
        await _reply(msg, self._answers.topics(query))

    async def _connections(self, msg: Msg) -> None:
        query = _decoded(nodes.user_query_decoder, msg, "connections")
        if query is None:
            return
        await _reply(msg, self._answers.connections(query))

    async def _disconnect_user(self, msg: Msg) -> None:
        query = _decoded(nodes.user_query_decoder, msg, "disconnect")
        if query is None:
            return
        sockets = self._answers.sockets_of(query.user_id)
        for conn in sockets:
            await self._disconnect(conn)
        if sockets:
            log.info("operator disconnected a user", extra={"user_id": query.user_id, "sockets": len(sockets)})
        await _reply(msg, nodes.DisconnectAnswer(gateway=self._answers.gateway_id, closed=len(sockets)))


Q = TypeVar("Q")


def _decoded(decoder: msgspec.json.Decoder[Q], msg: Msg, what: str) -> Q | None:
    """The request in ``msg``, or None (logged) when it is malformed."""
    try:
        return decoder.decode(msg.data)
    except msgspec.DecodeError:
        log.warning("ignored a malformed %s request", what)
        return None


async def _reply(msg: Msg, answer: msgspec.Struct) -> None:
    if not msg.reply:
        return
    try:
        await msg.respond(nodes.encoder.encode(answer))
    except Exception as exc:  # the connection went away meanwhile: the asker times out
        log.warning("operator answer not sent: %s", type(exc).__name__)
