"""The connection core's part in presence: ``presence`` on subscribe, and the ``presence`` query."""

from __future__ import annotations

from herald_common.rpc import MembershipReply
from herald_gateway.actions import AddInterest, AskMembership, AskPresence, Watch
from tests.gateway.helpers import T0, authed, frames, text


def test_subscribe_with_presence_asks_for_join_and_leave_frames() -> None:
    session = authed("alice", topics=["room.*"])
    actions = session.on_text(text({"type": "subscribe", "topic": "room.1", "presence": True}), T0)
    assert actions[0] == AddInterest("room.1", True)
    assert frames(actions) == [{"type": "subscribed", "topic": "room.1"}]


def test_subscribe_without_presence_is_tracked_but_not_watching() -> None:
    session = authed("alice", topics=["room.*"])
    actions = session.on_text(text({"type": "subscribe", "topic": "room.1"}), T0)
    assert actions[0] == AddInterest("room.1", False)


def test_presence_on_a_pattern_is_invalid_topic() -> None:
    session = authed("alice", topics=["room.**"])
    actions = session.on_text(text({"type": "subscribe", "topic": "room.*", "presence": True, "id": 3}), T0)
    assert frames(actions) == [
        {"type": "error", "code": "invalid_topic", "message": "presence needs an exact topic, not a pattern", "id": 3}
    ]
    assert len(session.subscriptions) == 0


def test_subscribing_again_turns_presence_on_or_off() -> None:
    session = authed("alice", topics=["room.*"])
    session.on_text(text({"type": "subscribe", "topic": "room.1"}), T0)
    actions = session.on_text(text({"type": "subscribe", "topic": "room.1", "presence": True}), T0)
    assert actions[0] == Watch("room.1", True)
    actions = session.on_text(text({"type": "subscribe", "topic": "room.1"}), T0)
    assert actions[0] == Watch("room.1", False)


def test_a_query_is_authorized_like_a_subscription() -> None:
    session = authed("alice", topics=["room.*"])
    assert session.on_text(text({"type": "presence", "topic": "room.1", "id": 9}), T0) == [AskPresence("room.1", 9)]
    assert frames(session.on_text(text({"type": "presence", "topic": "hall", "id": 1}), T0)) == [
        {"type": "error", "code": "forbidden", "message": "not allowed to see who is on 'hall'", "id": 1}
    ]
    assert frames(session.on_text(text({"type": "presence", "topic": "room.*"}), T0))[0]["code"] == "invalid_topic"


def test_a_channel_query_waits_for_the_membership_answer() -> None:
    session = authed("alice")
    [ask] = session.on_text(text({"type": "presence", "topic": "messages.channel.c1", "id": "q"}), T0)
    assert isinstance(ask, AskMembership) and ask.channel_id == "c1"
    member = MembershipReply(exists=True, member=True)
    assert session.on_membership(ask.request_id, member) == [AskPresence("messages.channel.c1", "q")]
    [ask] = session.on_text(text({"type": "presence", "topic": "messages.channel.c2", "id": "r"}), T0)
    assert isinstance(ask, AskMembership)
    denied = frames(session.on_membership(ask.request_id, MembershipReply(exists=True, member=False)))
    assert denied[0]["code"] == "forbidden" and denied[0]["id"] == "r"


def test_a_query_with_an_expired_token_is_unauthorized() -> None:
    session = authed("alice", topics=["room.*"], ttl=60)
    exp = session.deadline
    assert exp is not None
    session.on_timer(exp)
    [error] = frames(session.on_text(text({"type": "presence", "topic": "room.1", "id": 4}), exp + 1))
    assert (error["code"], error["id"]) == ("unauthorized", 4)
