"""The sans-I/O core's subscriptions: routing, resume, gaps, presence; no socket, no clock."""

from __future__ import annotations

import pytest

from herald_client.errors import (
    ServerError,
    SubscriptionEndedError,
)
from herald_client.messages import GapReason, PresenceKind, PresenceSnapshot
from herald_client.outputs import (
    Deliver,
    Ended,
    GapFound,
    Presence,
    ReconnectIn,
    Reject,
    Resolve,
)
from herald_client.resume import Position
from herald_client.states import ClientState, SubscriptionState
from tests.clients.corehelp import TOKEN, WALL, connect, frame, msg, new_core, of, sent, subscribed


def test_subscribe_resolves_on_subscribed_and_messages_are_routed() -> None:
    core = new_core()
    connect(core)
    entry, rid, out = core.subscribe("news.*", False, 0.0)
    states = [entry.state]
    [request] = sent(out)
    assert request == {"type": "subscribe", "topic": "news.*", "id": request["id"]}  # no since: fresh
    answer = core.on_frame(frame(type="subscribed", topic="news.*", id=request["id"]), 0.0)
    assert of(Resolve, answer) == [Resolve(rid, None)]
    states.append(entry.state)
    assert states == [SubscriptionState.SUBSCRIBING, SubscriptionState.SUBSCRIBED]
    [deliver] = of(Deliver, core.on_frame(msg("news.sport", 3), 0.0))
    assert deliver.pattern == "news.*" and deliver.message.data == {"n": 3} and deliver.message.offset == 3
    assert core.on_frame(msg("weather.x", 4), 0.0) == []


def test_one_frame_reaches_every_overlapping_subscription_once() -> None:
    core = new_core()
    connect(core)
    subscribed(core, "news.*")
    subscribed(core, "news.sport")
    out = core.on_frame(msg("news.sport", 5), 0.0)
    assert sorted(d.pattern for d in of(Deliver, out)) == ["news.*", "news.sport"]
    assert of(Deliver, core.on_frame(msg("news.sport", 5), 0.0)) == []  # a replayed copy
    assert [d.pattern for d in of(Deliver, core.on_frame(msg("news.tech", 6), 0.0))] == ["news.*"]


def test_a_second_subscription_to_the_same_pattern_is_refused() -> None:
    core = new_core()
    connect(core)
    subscribed(core, "a.b")
    with pytest.raises(ValueError, match="already subscribed"):
        core.subscribe("a.b", False, 0.0)
    with pytest.raises(ValueError, match="exact topics"):
        core.subscribe("a.*", True, 0.0)


def test_refused_subscribe_rejects_with_the_server_error() -> None:
    core = new_core()
    connect(core)
    entry, rid, out = core.subscribe("secret.**", False, 0.0)
    [request] = sent(out)
    answer = core.on_frame(frame(type="error", code="forbidden", message="no", id=request["id"]), 0.0)
    [reject] = of(Reject, answer)
    assert reject.request_id == rid and isinstance(reject.error, ServerError) and reject.error.code == "forbidden"
    assert entry.state is SubscriptionState.UNSUBSCRIBED and "secret.**" not in core.subs


def test_reconnect_resubscribes_with_since_and_drops_the_replayed_duplicates() -> None:
    core = new_core()
    connect(core)
    subscribed(core, "news.*")
    for offset in (3, 7):
        core.on_frame(msg("news.sport", offset), 0.0)
    out = core.on_closed(1001, 1.0)
    [reconnect] = of(ReconnectIn, out)
    assert 0.5 <= reconnect.delay <= 1.0
    assert core.state is ClientState.DISCONNECTED
    assert core.subs["news.*"].state is SubscriptionState.SUBSCRIBING
    out = connect(core, 2.0)
    [request] = sent(out)
    assert request["since"] == {"offset": 7, "epoch": "e1"}
    answer = core.on_frame(frame(type="subscribed", topic="news.*", id=request["id"], recovered=True), 2.0)
    assert of(GapFound, answer) == [] and core.subs["news.*"].recovered is True
    replay = [msg("news.sport", 7), msg("news.sport", 9), msg("news.sport", 9), msg("news.sport", 11)]
    delivered = [d.message.offset for f in replay for d in of(Deliver, core.on_frame(f, 2.0))]
    assert delivered == [9, 11]


def test_recovered_false_is_reported_as_a_gap() -> None:
    core = new_core()
    connect(core)
    subscribed(core, "a.b")
    core.on_frame(msg("a.b", 4), 0.0)
    core.on_closed(1006, 0.0)
    [request] = sent(connect(core, 1.0))
    answer = core.on_frame(frame(type="subscribed", topic="a.b", id=request["id"], recovered=False), 1.0)
    [gap] = of(GapFound, answer)
    assert gap.gap.reason is GapReason.NOT_RECOVERED and gap.gap.offset == 4 and gap.gap.pattern == "a.b"
    assert core.subs["a.b"].recovered is False


def test_an_epoch_change_is_a_gap_before_the_message() -> None:
    core = new_core()
    connect(core)
    subscribed(core, "a.b")
    core.on_frame(msg("a.b", 40), 0.0)
    out = core.on_frame(msg("a.b", 1, epoch="e2"), 0.0)
    assert [type(o) for o in out] == [GapFound, Deliver]
    assert of(GapFound, out)[0].gap.reason is GapReason.EPOCH_CHANGED


def test_overlapping_subscriptions_resume_from_a_common_position() -> None:
    core = new_core()
    connect(core)
    subscribed(core, "news.*")
    core.on_frame(msg("news.tech", 10), 0.0)
    subscribed(core, "news.sport")  # joined later: its position is older on news.sport
    core.on_frame(msg("news.sport", 12), 0.0)
    core.on_frame(msg("news.tech", 15), 0.0)
    core.on_closed(1006, 0.0)
    requests = {r["topic"]: r for r in sent(connect(core, 1.0))}
    assert requests["news.sport"]["since"] == {"offset": 12, "epoch": "e1"}
    assert requests["news.*"]["since"] == {"offset": 12, "epoch": "e1"}  # not 15: news.sport needs from 12


def test_a_subscription_made_while_offline_is_sent_on_connect() -> None:
    core = new_core()
    core.start()
    core.on_closed(None, 0.0)  # the first attempt failed
    entry, rid, out = core.subscribe("a.b", False, 0.0)
    assert out == [] and entry.state is SubscriptionState.SUBSCRIBING
    core.start()
    core.on_open(TOKEN, 1.0, WALL)
    [request] = sent(core.on_frame(frame(type="auth_success", userId="alice"), 1.0))
    assert request["topic"] == "a.b" and "since" not in request
    assert of(Resolve, core.on_frame(frame(type="subscribed", topic="a.b", id=request["id"]), 1.0)) == [
        Resolve(rid, None)
    ]


def test_subscribe_with_a_kept_position_sends_since() -> None:
    core = new_core()
    connect(core)
    _, _, out = core.subscribe("a.b", False, 0.0, since=Position(33, "e9"))
    assert sent(out)[0]["since"] == {"offset": 33, "epoch": "e9"}


def test_unprompted_unsubscribed_ends_the_subscription_with_an_error() -> None:
    core = new_core()
    connect(core)
    subscribed(core, "messages.channel.c1")
    [ended] = of(Ended, core.on_frame(frame(type="unsubscribed", topic="messages.channel.c1"), 0.0))
    assert isinstance(ended.error, SubscriptionEndedError)


def test_unsubscribe_sends_and_resolves() -> None:
    core = new_core()
    connect(core)
    subscribed(core, "a.b")
    rid, out = core.unsubscribe("a.b", 0.0)
    assert sent(out) == [{"type": "unsubscribe", "topic": "a.b", "id": rid}]
    assert of(Ended, out) == [Ended("a.b", None)]
    assert of(Resolve, core.on_frame(frame(type="unsubscribed", topic="a.b", id=rid), 0.0)) == [Resolve(rid, None)]
    assert of(Deliver, core.on_frame(msg("a.b", 3), 0.0)) == []


def test_a_retryable_resubscribe_error_is_retried() -> None:
    core = new_core()
    connect(core)
    subscribed(core, "messages.channel.c1")
    core.on_closed(1006, 0.0)
    [request] = sent(connect(core, 1.0))
    core.on_frame(frame(type="error", code="internal", message="membership unknown", id=request["id"]), 1.0)
    assert "messages.channel.c1" in core.subs
    [again] = sent(core.on_timer(2.0))
    assert again["type"] == "subscribe" and again["topic"] == "messages.channel.c1"


def test_presence_subscription_gets_join_and_leave_and_the_query_resolves() -> None:
    core = new_core()
    connect(core)
    entry, _, out = core.subscribe("room.1", True, 0.0)
    [request] = sent(out)
    assert request["presence"] is True
    [roster] = sent(core.on_frame(frame(type="subscribed", topic="room.1", id=request["id"]), 0.0))
    assert roster == {"type": "presence", "topic": "room.1", "id": roster["id"]}  # who is there already?
    assert core.on_frame(frame(type="presence", topic="room.1", users=["dave"], count=1, id=roster["id"]), 0.0) == []
    assert entry.members == {"dave"}
    [join] = of(Presence, core.on_frame(frame(type="join", topic="room.1", userId="bob"), 0.0))
    assert join.event.kind is PresenceKind.JOIN and join.event.user_id == "bob"
    core.on_frame(frame(type="join", topic="room.1", userId="carol"), 0.0)
    [leave] = of(Presence, core.on_frame(frame(type="leave", topic="room.1", userId="bob"), 0.0))
    assert leave.event.kind is PresenceKind.LEAVE and entry.members == {"carol", "dave"}
    assert core.on_frame(frame(type="join", topic="room.2", userId="x"), 0.0) == []  # not held
    rid, out = core.presence("room.1", 0.0)
    assert sent(out) == [{"type": "presence", "topic": "room.1", "id": rid}]
    answer = core.on_frame(frame(type="presence", topic="room.1", users=["alice", "carol"], count=2, id=rid), 0.0)
    assert of(Resolve, answer) == [Resolve(rid, PresenceSnapshot("room.1", 2, ["alice", "carol"]))]
    rid, _ = core.presence("room.1", 0.0)
    crowded = core.on_frame(frame(type="presence", topic="room.1", count=5000, id=rid), 0.0)
    assert of(Resolve, crowded) == [Resolve(rid, PresenceSnapshot("room.1", 5000, None))]  # above the cap


def test_a_presence_subscribe_on_a_gateway_without_presence_stays_quiet() -> None:
    core = new_core()
    connect(core)
    entry, rid, out = core.subscribe("room.1", True, 0.0)
    answer = core.on_frame(frame(type="subscribed", topic="room.1", id=sent(out)[0]["id"]), 0.0)
    [roster] = sent(answer)
    refused = core.on_frame(frame(type="error", code="bad_request", message="unknown", id=roster["id"]), 0.0)
    assert refused == [] and entry.members == set()
    assert of(Resolve, answer) == [Resolve(rid, None)]


def test_a_presence_query_refused_by_an_older_gateway_rejects() -> None:
    core = new_core()
    connect(core)
    rid, _ = core.presence("room.1", 0.0)
    out = core.on_frame(frame(type="error", code="bad_request", message="unknown type", id=rid), 0.0)
    [reject] = of(Reject, out)
    assert isinstance(reject.error, ServerError) and reject.error.code == "bad_request"
