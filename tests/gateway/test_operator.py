"""The gateway's answers to operators, built from its sockets and interest table (no I/O)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from herald_common import nodes
from herald_common.errors import CloseCode
from herald_gateway.actions import Close, RemoveInterest
from herald_gateway.connection import ClientConnection
from herald_gateway.hub import Interest
from herald_gateway.operator import OperatorAnswers
from herald_gateway.session import Session
from tests.gateway.helpers import T0, authed, text


@dataclass(eq=False)
class FakeConn:
    session: Session
    serial: int
    client_ip: str = "10.0.0.1"
    opened: float = T0
    closing: bool = False


def subscribed(sub: str, *patterns: str) -> Session:
    session = authed(sub, topics=["room.**"])
    for p in patterns:
        session.on_text(text({"type": "subscribe", "topic": p}), T0)
    return session


def answers(conns: list[FakeConn], interest: Interest[Any], limit: int = 100) -> OperatorAnswers:
    return OperatorAnswers("gw1", cast("list[ClientConnection]", conns), interest, limit)


def test_topics_sorted_with_their_socket_counts_filtered_and_capped() -> None:
    interest: Interest[Any] = Interest()
    a, b = object(), object()
    for pattern, member in [("room.b", a), ("room.b", b), ("room.*", a), ("other.x", b), ("ROOM.c", a)]:
        interest.add(pattern, member)
    got = answers([], interest).topics(nodes.TopicsQuery(search="room"))
    assert got == nodes.TopicsAnswer(
        gateway="gw1",
        patterns=[nodes.HeldPattern("ROOM.c", 1), nodes.HeldPattern("room.*", 1), nodes.HeldPattern("room.b", 2)],
        truncated=False,
    )
    capped = answers([], interest, limit=2).topics(nodes.TopicsQuery())
    assert [p.pattern for p in capped.patterns] == ["ROOM.c", "other.x"]
    assert capped.truncated


def test_a_user_s_sockets_are_listed_with_their_subscriptions() -> None:
    conns = [
        FakeConn(subscribed("alice", "room.2", "room.1"), serial=7),
        FakeConn(subscribed("bob", "room.1"), serial=8),
        FakeConn(subscribed("alice"), serial=3, client_ip="10.0.0.9", opened=T0 + 5),
        FakeConn(subscribed("alice"), serial=9, closing=True),
    ]
    got = answers(conns, Interest()).connections(nodes.UserQuery(user_id="alice"))
    assert got == nodes.ConnectionsAnswer(
        gateway="gw1",
        sockets=[
            nodes.SocketInfo(id="gw1-3", client_ip="10.0.0.9", connected=T0 + 5, subscriptions=[]),
            nodes.SocketInfo(id="gw1-7", client_ip="10.0.0.1", connected=T0, subscriptions=["room.1", "room.2"]),
        ],
    )
    assert answers(conns, Interest()).connections(nodes.UserQuery(user_id="carol")).sockets == []


def test_an_operator_disconnect_closes_with_4003_and_releases_the_subscriptions() -> None:
    session = subscribed("alice", "room.1")
    actions = session.on_operator_disconnect()
    assert RemoveInterest("room.1") in actions
    closes = [a for a in actions if isinstance(a, Close)]
    assert closes == [Close(CloseCode.OPERATOR_DISCONNECT, "disconnected by an operator")]
    assert int(CloseCode.OPERATOR_DISCONNECT) == 4003
    assert session.on_operator_disconnect() == []
