"""The connection core as pure data: frames and ticks in, actions out."""

from __future__ import annotations

import json
from typing import Any

import pytest
from msgspec import UNSET

from herald_common.errors import CloseCode
from herald_common.rpc import MembershipReply
from herald_common.topics import matches
from herald_gateway.actions import (
    AddInterest,
    AskMembership,
    BeginRecovery,
    Close,
    PublishTo,
    RemoveInterest,
    Replay,
    Send,
)
from herald_gateway.session import AuthState, IllegalTransitionError, Limits, Session
from tests.gateway.helpers import LIMITS, T0, authed, frames, new_session, text, token


def state_of(session: Session) -> AuthState:
    # A call, so that mypy does not narrow ``session.state`` across inputs.
    return session.state


def closes(actions: list[Any]) -> list[CloseCode]:
    return [a.code for a in actions if isinstance(a, Close)]


# auth ordering


def test_auth_success() -> None:
    session = new_session()
    actions = session.on_text(text({"type": "auth", "token": token("alice")}), T0)
    assert frames(actions) == [{"type": "auth_success", "userId": "alice"}]
    assert state_of(session) is AuthState.AUTHENTICATED
    assert session.user_id == "alice"


@pytest.mark.parametrize(
    "frame",
    [
        {"type": "ping"},
        {"type": "subscribe", "topic": "a.b", "id": 7},
        {"type": "unsubscribe", "topic": "a.b"},
        {"type": "message", "topic": "a.b", "data": 1},
    ],
)
def test_any_other_frame_before_auth_is_fatal(frame: dict[str, Any]) -> None:
    session = new_session()
    actions = session.on_text(text(frame), T0)
    [error] = frames(actions)
    assert error["type"] == "error"
    assert error["code"] == "unauthorized"
    assert error.get("id") == frame.get("id")
    assert closes(actions) == [CloseCode.AUTH_FAILED]
    assert state_of(session) is AuthState.CLOSED
    assert session.on_text(text({"type": "auth", "token": token()}), T0) == []


def test_malformed_frame_before_auth_is_fatal() -> None:
    session = new_session()
    actions = session.on_text("not json", T0)
    assert [f["code"] for f in frames(actions)] == ["bad_request"]
    assert closes(actions) == [CloseCode.AUTH_FAILED]


def test_binary_frame_before_auth_is_fatal() -> None:
    session = new_session()
    actions = session.on_binary(b"\x00\x01", T0)
    assert [f["code"] for f in frames(actions)] == ["bad_request"]
    assert closes(actions) == [CloseCode.AUTH_FAILED]


@pytest.mark.parametrize(
    "bad_token",
    [
        "garbage",
        "",
        token("alice", ttl=-60),
        token("alice").rsplit(".", 1)[0] + ".AAAA",
    ],
)
def test_bad_token_is_unauthorized_then_4001(bad_token: str) -> None:
    session = new_session()
    actions = session.on_text(text({"type": "auth", "token": bad_token}), T0)
    assert [f["code"] for f in frames(actions)] == ["unauthorized"]
    assert closes(actions) == [CloseCode.AUTH_FAILED]
    assert state_of(session) is AuthState.CLOSED


def test_auth_timeout_closes_4001() -> None:
    session = new_session()
    assert session.deadline == T0 + LIMITS.auth_timeout
    assert session.on_timer(T0 + LIMITS.auth_timeout - 0.001) == []
    actions = session.on_timer(T0 + LIMITS.auth_timeout)
    assert closes(actions) == [CloseCode.AUTH_FAILED]
    assert state_of(session) is AuthState.CLOSED
    assert session.deadline is None


def test_auth_cancels_the_auth_timeout() -> None:
    session = authed()
    assert session.on_timer(T0 + LIMITS.auth_timeout + 1) == []
    assert state_of(session) is AuthState.AUTHENTICATED


def test_illegal_transition_raises() -> None:
    session = new_session()
    session.on_timer(T0 + 60)
    with pytest.raises(IllegalTransitionError):
        session._transition(AuthState.AUTHENTICATED)


# bad frames on a live connection


@pytest.mark.parametrize(
    ("raw", "frame_id"),
    [
        ("not json", None),
        ("[1, 2]", None),
        ('"auth"', None),
        ("{}", None),
        ('{"type": "nope", "id": 5}', 5),
        ('{"type": "subscribe", "id": "s1"}', "s1"),
        ('{"type": "subscribe", "topic": 5, "id": [1]}', [1]),
        ('{"type": "auth", "token": 12}', None),
        ('{"type": "subscribe", "topic": "a", "since": {"offset": 1e999, "epoch": "e"}, "id": 3}', 3),
        ('{"type": "subscribe", "topic": "a", "since": {"offset": 99999999999999999999999, "epoch": "e"}}', None),
        ('{"type": "subscribe", "topic": "a", "since": {"offset": -1, "epoch": "e"}, "id": 2}', 2),
        ('{"type": "message", "topic": "a.b", "id": 9}', 9),
        ('{"type": "subscribe", "topic": "a", "id": 1, "x": ' + "[" * 5000 + "]" * 5000 + "}", None),
        ("[" * 100000 + "]" * 100000, None),
        ('{"type": "subscribe", "topic": "a", ', None),
    ],
)
def test_bad_frames_get_bad_request_and_stay_open(raw: str, frame_id: Any) -> None:
    session = authed()
    actions = session.on_text(raw, T0)
    [error] = frames(actions)
    assert error["type"] == "error"
    assert error["code"] == "bad_request"
    assert error.get("id") == frame_id
    assert closes(actions) == []
    assert state_of(session) is AuthState.AUTHENTICATED
    assert frames(session.on_text(text({"type": "ping"}), T0)) == [{"type": "pong"}]


def test_huge_integer_id_is_echoed() -> None:
    session = authed()
    big = 10**300
    raw = '{"type": "subscribe", "topic": "a..b", "id": ' + str(big) + "}"
    [error] = frames(session.on_text(raw, T0))
    assert error["code"] == "invalid_topic"
    assert error["id"] == big


def test_binary_frame_after_auth_is_bad_request() -> None:
    session = authed()
    actions = session.on_binary(b'{"type":"ping"}', T0)
    assert [f["code"] for f in frames(actions)] == ["bad_request"]
    assert closes(actions) == []


def test_ping_pong() -> None:
    assert frames(authed().on_text(text({"type": "ping"}), T0)) == [{"type": "pong"}]


# subscriptions


def test_subscribe_own_topic() -> None:
    session = authed()
    actions = session.on_text(text({"type": "subscribe", "topic": "messages.user.alice", "id": "a"}), T0)
    assert actions[0] == AddInterest("messages.user.alice")
    assert frames(actions) == [{"type": "subscribed", "topic": "messages.user.alice", "id": "a"}]


def test_duplicate_subscribe_is_idempotent() -> None:
    session = authed()
    session.on_text(text({"type": "subscribe", "topic": "messages.user.alice"}), T0)
    actions = session.on_text(text({"type": "subscribe", "topic": "messages.user.alice", "id": 2}), T0)
    assert frames(actions) == [{"type": "subscribed", "topic": "messages.user.alice", "id": 2}]
    assert not any(isinstance(a, AddInterest) for a in actions)
    assert len(session.subscriptions) == 1


@pytest.mark.parametrize("pattern", ["a..b", "a.**.b", "", "a.b c", "x" * 256, ".".join(["a"] * 17), "a.*b"])
def test_invalid_pattern(pattern: str) -> None:
    session = authed()
    actions = session.on_text(text({"type": "subscribe", "topic": pattern, "id": 1}), T0)
    assert frames(actions) == [
        {"type": "error", "code": "invalid_topic", "message": frames(actions)[0]["message"], "id": 1}
    ]
    assert len(session.subscriptions) == 0


@pytest.mark.parametrize("pattern", ["messages.user.bob", "messages.user.*", "messages.**", "*.user.bob", "messages"])
def test_forbidden_patterns(pattern: str) -> None:
    session = authed()
    actions = session.on_text(text({"type": "subscribe", "topic": pattern}), T0)
    assert [f["code"] for f in frames(actions)] == ["forbidden"]
    assert not any(isinstance(a, AddInterest) for a in actions)


def test_admin_may_subscribe_to_anything() -> None:
    session = authed("root", roles=["admin"])
    actions = session.on_text(text({"type": "subscribe", "topic": "messages.**"}), T0)
    assert AddInterest("messages.**") in actions


def test_subscription_limit_is_rate_limited() -> None:
    session = authed(topics=["t.**"])
    for i in range(LIMITS.max_subscriptions):
        assert AddInterest(f"t.{i}") in session.on_text(text({"type": "subscribe", "topic": f"t.{i}"}), T0)
    actions = session.on_text(text({"type": "subscribe", "topic": "t.over", "id": "x"}), T0)
    [error] = frames(actions)
    assert (error["code"], error["id"]) == ("rate_limited", "x")
    assert closes(actions) == []
    # Re-subscribing to something already held still answers subscribed.
    assert frames(session.on_text(text({"type": "subscribe", "topic": "t.0"}), T0))[0]["type"] == "subscribed"
    # Freeing a slot allows a new one.
    session.on_text(text({"type": "unsubscribe", "topic": "t.0"}), T0)
    assert AddInterest("t.over") in session.on_text(text({"type": "subscribe", "topic": "t.over"}), T0)


def test_unsubscribe() -> None:
    session = authed()
    session.on_text(text({"type": "subscribe", "topic": "messages.user.alice"}), T0)
    actions = session.on_text(text({"type": "unsubscribe", "topic": "messages.user.alice", "id": 4}), T0)
    assert actions[0] == RemoveInterest("messages.user.alice")
    assert frames(actions) == [{"type": "unsubscribed", "topic": "messages.user.alice", "id": 4}]


def test_unsubscribe_of_unheld_pattern_answers_unsubscribed() -> None:
    actions = authed().on_text(text({"type": "unsubscribe", "topic": "never.held", "id": 1}), T0)
    assert actions == [Send(b'{"type":"unsubscribed","topic":"never.held","id":1}')]


def test_unsubscribe_invalid_pattern() -> None:
    actions = authed().on_text(text({"type": "unsubscribe", "topic": "a..b"}), T0)
    assert [f["code"] for f in frames(actions)] == ["invalid_topic"]


def test_since_asks_for_a_replay_with_the_interest_parked_first() -> None:
    session = authed()
    frame = {"type": "subscribe", "topic": "messages.user.alice", "id": 9, "since": {"offset": 3, "epoch": "e"}}
    actions = session.on_text(text(frame), T0)
    assert actions[:2] == [BeginRecovery("messages.user.alice"), AddInterest("messages.user.alice")]
    [replay] = actions[2:]
    assert isinstance(replay, Replay)
    assert (replay.pattern, replay.since.offset, replay.since.epoch) == ("messages.user.alice", 3, "e")
    assert json.loads(replay.recovered_frame) == {
        "type": "subscribed",
        "topic": "messages.user.alice",
        "id": 9,
        "recovered": True,
    }
    assert json.loads(replay.lost_frame) == {
        "type": "subscribed",
        "topic": "messages.user.alice",
        "id": 9,
        "recovered": False,
    }
    # Already held: the connection was live, so nothing can be claimed recovered.
    assert frames(session.on_text(text(frame), T0)) == [
        {"type": "subscribed", "topic": "messages.user.alice", "id": 9, "recovered": False}
    ]


def test_overlapping_patterns_deliver_once() -> None:
    session = authed(topics=["a.**"])
    session.on_text(text({"type": "subscribe", "topic": "a.*"}), T0)
    session.on_text(text({"type": "subscribe", "topic": "a.b"}), T0)
    session.on_text(text({"type": "subscribe", "topic": "a.**"}), T0)
    for topic in ("a.b", "a.c", "a.b.c"):
        # NATS hands the message over once per held pattern that matches its topic.
        arrivals = [p for p in ("a.*", "a.b", "a.**") if matches(p, topic)]
        delivered = [p for p in arrivals if session.wants(p, topic)]
        assert len(delivered) == 1, topic
    assert not session.wants("z", "z")


# channel membership


def ask(session: Session, pattern: str = "messages.channel.c1", frame_id: Any = "m") -> AskMembership:
    [action] = session.on_text(text({"type": "subscribe", "topic": pattern, "id": frame_id}), T0)
    assert isinstance(action, AskMembership)
    return action


def test_channel_member_is_subscribed() -> None:
    session = authed()
    request = ask(session)
    assert (request.channel_id, request.user_id) == ("c1", "alice")
    actions = session.on_membership(request.request_id, MembershipReply(exists=True, member=True))
    assert actions[0] == AddInterest("messages.channel.c1")
    assert frames(actions) == [{"type": "subscribed", "topic": "messages.channel.c1", "id": "m"}]


@pytest.mark.parametrize(
    ("reply", "code"),
    [
        (MembershipReply(exists=True, member=False), "forbidden"),
        (MembershipReply(exists=False, member=False), "forbidden"),
        (None, "internal"),
    ],
)
def test_channel_not_allowed(reply: MembershipReply | None, code: str) -> None:
    session = authed()
    request = ask(session)
    actions = session.on_membership(request.request_id, reply)
    assert [(f["code"], f["id"]) for f in frames(actions)] == [(code, "m")]
    assert len(session.subscriptions) == 0


def test_membership_answer_after_close_or_unsubscribe_is_ignored() -> None:
    session = authed()
    request = ask(session)
    session.on_text(text({"type": "unsubscribe", "topic": "messages.channel.c1"}), T0)
    assert session.on_membership(request.request_id, MembershipReply(exists=True, member=True)) == []
    other = authed()
    request = ask(other)
    other.on_disconnect()
    assert other.on_membership(request.request_id, MembershipReply(exists=True, member=True)) == []


def test_pending_lookups_count_against_the_limit() -> None:
    session = authed(limits=Limits(auth_timeout=5, refresh_grace=30, max_subscriptions=2))
    ask(session, "messages.channel.c1")
    ask(session, "messages.channel.c2")
    actions = session.on_text(text({"type": "subscribe", "topic": "messages.user.alice"}), T0)
    assert [f["code"] for f in frames(actions)] == ["rate_limited"]


def test_access_revoked_drops_membership_subscription() -> None:
    session = authed()
    session.on_membership(ask(session).request_id, MembershipReply(exists=True, member=True))
    actions = session.on_access_revoked("c1")
    assert actions[0] == RemoveInterest("messages.channel.c1")
    assert frames(actions) == [{"type": "unsubscribed", "topic": "messages.channel.c1"}]
    assert session.on_access_revoked("c1") == []


def test_access_revoked_keeps_token_granted_subscription() -> None:
    session = authed("root", roles=["admin"])
    session.on_text(text({"type": "subscribe", "topic": "messages.channel.c1"}), T0)
    assert session.on_access_revoked("c1") == []
    assert "messages.channel.c1" in session.subscriptions


# publishing


def test_publish_with_grant() -> None:
    session = authed(publish=["chat.*"])
    actions = session.on_text('{"type":"message","topic":"chat.r1","data":{"x":[1, 2]},"id":"p"}', T0)
    assert actions == [PublishTo("chat.r1", b'{"x":[1, 2]}', "alice", "p")]
    assert frames(session.on_publish_failed("p"))[0]["code"] == "internal"


def test_a_stored_publish_is_answered_published_with_its_offset() -> None:
    session = authed(publish=["chat.*"])
    assert frames(session.on_published("chat.r1", 42, "p")) == [
        {"type": "published", "topic": "chat.r1", "offset": 42, "id": "p"}
    ]
    assert frames(session.on_published("chat.r1", 43, UNSET)) == [
        {"type": "published", "topic": "chat.r1", "offset": 43}
    ]


@pytest.mark.parametrize("grant", ["**", "messages.**", "messages", "messages.user.*", "messages.user.bob"])
@pytest.mark.parametrize("topic", ["messages", "messages.user.bob", "messages.channel.c1", "messages.x.y.z"])
def test_the_messages_namespace_is_refused_whatever_the_grant(grant: str, topic: str) -> None:
    session = authed(publish=[grant], roles=["admin", "publisher"])
    actions = session.on_text(text({"type": "message", "topic": topic, "data": {"forged": True}, "id": 9}), T0)
    assert [(f["code"], f["id"]) for f in frames(actions)] == [("forbidden", 9)]
    assert not [a for a in actions if isinstance(a, PublishTo)]


def test_a_frame_nested_too_deeply_is_bad_request_and_the_connection_stays() -> None:
    session = authed(publish=["chat.*"])
    deep = '{"type":"message","topic":"chat.r1","data":' + "[" * 100 + "]" * 100 + ',"id":5}'
    actions = session.on_text(deep, T0)
    assert [f["code"] for f in frames(actions)] == ["bad_request"]
    assert closes(actions) == []
    assert state_of(session) is AuthState.AUTHENTICATED
    assert frames(session.on_text(text({"type": "ping"}), T0)) == [{"type": "pong"}]


@pytest.mark.parametrize(
    ("topic", "code"), [("other.r1", "forbidden"), ("chat.*", "invalid_topic"), ("a..b", "invalid_topic")]
)
def test_publish_refused(topic: str, code: str) -> None:
    session = authed(publish=["chat.*"])
    actions = session.on_text(text({"type": "message", "topic": topic, "data": 1, "id": 1}), T0)
    assert [(f["code"], f["id"]) for f in frames(actions)] == [(code, 1)]


# token expiry and refresh


def test_expiry_grace_then_close() -> None:
    session = authed(ttl=60)
    exp = session.deadline
    assert exp is not None
    assert session.on_timer(exp - 1) == []
    actions = session.on_timer(exp)
    assert [f["code"] for f in frames(actions)] == ["unauthorized"]
    assert closes(actions) == []
    assert state_of(session) is AuthState.EXPIRED
    assert session.deadline == exp + LIMITS.refresh_grace
    # While expired: ping and unsubscribe work, subscribe and publish do not.
    assert frames(session.on_text(text({"type": "ping"}), exp + 1)) == [{"type": "pong"}]
    refused = session.on_text(text({"type": "subscribe", "topic": "messages.user.alice", "id": 1}), exp + 1)
    assert [(f["code"], f["id"]) for f in frames(refused)] == [("unauthorized", 1)]
    actions = session.on_timer(exp + LIMITS.refresh_grace)
    assert closes(actions) == [CloseCode.AUTH_FAILED]
    assert state_of(session) is AuthState.CLOSED


def test_refresh_within_grace_keeps_the_connection() -> None:
    session = authed(ttl=60)
    session.on_text(text({"type": "subscribe", "topic": "messages.user.alice"}), T0)
    exp = session.deadline
    assert exp is not None
    session.on_timer(exp)
    actions = session.on_text(text({"type": "auth", "token": token("alice", ttl=3600)}), exp + 1)
    assert frames(actions) == [{"type": "auth_success", "userId": "alice"}]
    assert state_of(session) is AuthState.AUTHENTICATED
    new_deadline = session.deadline
    assert new_deadline is not None and new_deadline > exp + LIMITS.refresh_grace
    assert session.on_timer(exp + LIMITS.refresh_grace) == []
    assert "messages.user.alice" in session.subscriptions


def test_refresh_before_expiry_extends_it() -> None:
    session = authed(ttl=60)
    before = session.deadline
    session.on_text(text({"type": "auth", "token": token("alice", ttl=7200)}), T0)
    after = session.deadline
    assert before is not None and after is not None and after > before


def test_refresh_with_other_user_is_forbidden() -> None:
    session = authed()
    actions = session.on_text(text({"type": "auth", "token": token("mallory")}), T0)
    assert [f["code"] for f in frames(actions)] == ["forbidden"]
    assert closes(actions) == []
    assert session.user_id == "alice"


def test_refresh_with_bad_token_keeps_current_token() -> None:
    session = authed()
    actions = session.on_text(text({"type": "auth", "token": "garbage"}), T0)
    assert [f["code"] for f in frames(actions)] == ["unauthorized"]
    assert closes(actions) == []
    assert state_of(session) is AuthState.AUTHENTICATED


def test_refresh_drops_subscriptions_the_new_token_does_not_allow() -> None:
    session = authed(topics=["news.**"])
    session.on_text(text({"type": "subscribe", "topic": "news.a"}), T0)
    session.on_text(text({"type": "subscribe", "topic": "messages.user.alice"}), T0)
    actions = session.on_text(text({"type": "auth", "token": token("alice")}), T0)
    assert RemoveInterest("news.a") in actions
    assert {"type": "unsubscribed", "topic": "news.a"} in frames(actions)
    assert list(session.subscriptions) == ["messages.user.alice"]


# closing


def test_slow_consumer_closes_4009_and_releases_interest() -> None:
    session = authed()
    session.on_text(text({"type": "subscribe", "topic": "messages.user.alice"}), T0)
    actions = session.on_slow_consumer()
    assert RemoveInterest("messages.user.alice") in actions
    assert closes(actions) == [CloseCode.SLOW_CONSUMER]
    assert session.on_slow_consumer() == []


def test_disconnect_releases_interest_without_frames() -> None:
    session = authed()
    session.on_text(text({"type": "subscribe", "topic": "messages.user.alice"}), T0)
    assert session.on_disconnect() == [RemoveInterest("messages.user.alice")]
    assert session.on_disconnect() == []
    assert session.on_text(text({"type": "ping"}), T0) == []
