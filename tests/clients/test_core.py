"""The sans-I/O core: frames and timer ticks in, outputs out; no socket, no clock."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from herald_client.backoff import Backoff
from herald_client.core import Core, Timing
from herald_client.errors import (
    AuthenticationError,
    ClientClosedError,
    ConnectionLostError,
    DisconnectedByOperatorError,
    IllegalTransitionError,
    RequestTimeoutError,
    ServerError,
    SubscriptionEndedError,
)
from herald_client.messages import GapReason, PresenceKind, PublishResult
from herald_client.outputs import (
    Abort,
    Deliver,
    Ended,
    FetchToken,
    GapFound,
    Output,
    Presence,
    ReconnectIn,
    Reject,
    Resolve,
    Send,
    Stopped,
)
from herald_client.resume import Position
from herald_client.states import ClientState, SubscriptionState
from tests.clients.test_tokens_frames import jwt

WALL = 1_000_000.0
TOKEN = jwt({"sub": "alice", "exp": WALL + 3600, "iat": WALL})


def sent(outputs: list[Output]) -> list[dict[str, Any]]:
    return [json.loads(o.text) for o in outputs if isinstance(o, Send)]


def of(kind: type[Any], outputs: list[Output]) -> list[Any]:
    return [o for o in outputs if isinstance(o, kind)]


def frame(**fields: Any) -> str:
    return json.dumps(fields)


def msg(topic: str, offset: int, epoch: str = "e1", **extra: Any) -> str:
    return frame(type="message", topic=topic, data={"n": offset}, offset=offset, epoch=epoch, **extra)


def new_core(refreshable: bool = False, **timing: float) -> Core:
    return Core(refreshable_token=refreshable, backoff=Backoff(rng=random.Random(0)), timing=Timing(**timing))


def connect(core: Core, now: float = 0.0, token: str = TOKEN) -> list[Output]:
    core.start()
    out = core.on_open(token, now, WALL + now)
    assert sent(out) == [{"type": "auth", "token": token}]
    return core.on_frame(frame(type="auth_success", userId="alice"), now)


def subscribed(core: Core, pattern: str, now: float = 0.0, **fields: Any) -> tuple[int, list[Output]]:
    """Subscribe and answer it; returns the app's request id and the outputs of the answer."""
    _, rid, out = core.subscribe(pattern, False, now)
    [request] = sent(out)
    return rid, core.on_frame(frame(type="subscribed", topic=pattern, id=request["id"], **fields), now)


def test_connect_authenticate_and_state_changes() -> None:
    core = new_core()
    seen: list[tuple[ClientState, ClientState]] = []
    core.machine.listen(lambda old, new: seen.append((old, new)))
    connect(core)
    assert core.state is ClientState.CONNECTED and core.user_id == "alice"
    assert seen == [
        (ClientState.DISCONNECTED, ClientState.CONNECTING),
        (ClientState.CONNECTING, ClientState.CONNECTED),
    ]
    with pytest.raises(IllegalTransitionError):
        core.start()  # already connected


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


def test_publish_resolves_on_published_with_its_id_and_errors_reject_theirs() -> None:
    core = new_core()
    connect(core)
    first, out1 = core.publish("a.b", {"k": 1}, 0.0)
    second, out2 = core.publish("messages.x", 1, 0.0)
    [p1], [p2] = sent(out1), sent(out2)
    assert p1 == {"type": "message", "topic": "a.b", "data": {"k": 1}, "id": first}
    assert of(Resolve, core.on_frame(frame(type="published", topic="a.b", offset=8, id=first), 0.0)) == [
        Resolve(first, PublishResult("a.b", 8))
    ]
    [reject] = of(Reject, core.on_frame(frame(type="error", code="forbidden", message="no", id=second), 0.0))
    assert reject.request_id == second and isinstance(reject.error, ServerError)
    assert len(core.requests) == 0
    assert p2["id"] == second


def test_publish_times_out() -> None:
    core = new_core(request_timeout=2.0)
    connect(core)
    rid, _ = core.publish("a.b", 1, 0.0)
    assert core.deadline is not None and core.deadline <= 2.0
    assert of(Reject, core.on_timer(1.9)) == []
    [reject] = of(Reject, core.on_timer(2.0))
    assert reject.request_id == rid and isinstance(reject.error, RequestTimeoutError)


def test_publish_in_flight_when_the_socket_drops_is_rejected_and_one_made_offline_waits() -> None:
    core = new_core()
    connect(core)
    flying, _ = core.publish("a.b", 1, 0.0)
    [reject] = of(Reject, core.on_closed(1006, 0.0))
    assert reject.request_id == flying and isinstance(reject.error, ConnectionLostError)
    waiting, out = core.publish("a.b", 2, 0.5)
    assert out == []
    [request] = sent(connect(core, 1.0))
    assert request["id"] == waiting and request["data"] == 2


def test_silence_sends_a_ping_and_no_answer_drops_the_socket() -> None:
    core = new_core(ping_interval=5.0, ping_timeout=3.0)
    connect(core)
    assert core.deadline == 5.0
    assert sent(core.on_timer(5.0)) == [{"type": "ping"}]
    assert core.deadline == 8.0
    [abort] = of(Abort, core.on_timer(8.0))
    assert "pong" in abort.reason
    [reconnect] = of(ReconnectIn, core.on_closed(1000, 8.1))  # whatever code the abort closed with
    assert reconnect.delay > 0 and core.state is ClientState.DISCONNECTED


def test_any_frame_proves_the_socket_alive() -> None:
    core = new_core(ping_interval=5.0, ping_timeout=3.0)
    connect(core)
    core.on_timer(5.0)
    core.on_frame(frame(type="pong"), 6.0)
    assert of(Abort, core.on_timer(8.0)) == []
    assert core.deadline == 11.0


def test_token_refresh_before_exp_on_the_live_socket() -> None:
    short = jwt({"sub": "alice", "exp": WALL + 4, "iat": WALL})
    core = new_core(refreshable=True)
    connect(core, token=short)
    assert core.deadline == pytest.approx(3.6)
    assert of(FetchToken, core.on_timer(3.6)) == [FetchToken()]
    fresh = jwt({"sub": "alice", "exp": WALL + 8, "iat": WALL + 3})
    assert sent(core.on_fresh_token(fresh, WALL + 3.7, 3.7)) == [{"type": "auth", "token": fresh}]
    assert core.on_frame(frame(type="auth_success", userId="alice"), 3.8) == []
    assert core.state is ClientState.CONNECTED
    assert core.deadline == pytest.approx(3.7 + 3.8)  # 4.3 s left minus a tenth of the 5 s lifetime


def test_a_refused_refresh_reconnects_with_a_new_token() -> None:
    short = jwt({"sub": "alice", "exp": WALL + 4, "iat": WALL})
    core = new_core(refreshable=True)
    connect(core, token=short)
    core.on_timer(3.6)
    core.on_fresh_token("bad", WALL + 3.7, 3.7)
    [abort] = of(Abort, core.on_frame(frame(type="error", code="unauthorized", message="invalid token"), 3.8))
    assert "refresh" in abort.reason
    assert of(ReconnectIn, core.on_closed(1000, 3.9))


def test_a_fixed_token_is_never_refreshed_and_its_refusal_closes_for_good() -> None:
    core = new_core(refreshable=False)
    connect(core, token=jwt({"sub": "alice", "exp": WALL + 4, "iat": WALL}))
    assert core.deadline == 15.0  # only the ping
    subscribed(core, "a.b")
    out = core.on_closed(4001, 5.0)
    [stopped] = of(Stopped, out)
    assert isinstance(stopped.error, AuthenticationError) and core.state is ClientState.CLOSED
    [ended] = of(Ended, out)
    assert ended.pattern == "a.b" and isinstance(ended.error, AuthenticationError)


def test_a_refused_callback_token_reconnects() -> None:
    core = new_core(refreshable=True)
    connect(core)
    assert of(ReconnectIn, core.on_closed(4001, 1.0))


def test_operator_disconnect_closes_for_good() -> None:
    core = new_core(refreshable=True)
    connect(core)
    rid, _ = core.publish("a.b", 1, 0.0)
    out = core.on_closed(4003, 1.0)
    assert of(ReconnectIn, out) == []
    [stopped] = of(Stopped, out)
    assert isinstance(stopped.error, DisconnectedByOperatorError)
    [reject] = of(Reject, out)
    assert reject.request_id == rid and isinstance(reject.error, ConnectionLostError)
    assert core.state is ClientState.CLOSED
    with pytest.raises(ClientClosedError):
        core.publish("a.b", 1, 2.0)


def test_limit_close_backs_off_longer() -> None:
    core = new_core()
    connect(core)
    [reconnect] = of(ReconnectIn, core.on_closed(4008, 1.0))
    assert 5.0 <= reconnect.delay <= 20.0


def test_backoff_grows_over_failed_attempts_and_resets_on_success() -> None:
    core = new_core()
    core.start()
    ceilings = []
    for _ in range(6):
        ceilings.append(core.backoff.ceiling(core.backoff.attempt))
        [reconnect] = of(ReconnectIn, core.on_connect_failed(0.0))
        assert reconnect.delay <= ceilings[-1]
        core.start()
    assert ceilings == [1.0, 2.0, 4.0, 8.0, 16.0, 20.0]
    core.on_open(TOKEN, 0.0, WALL)
    core.on_frame(frame(type="auth_success", userId="alice"), 0.0)
    assert core.backoff.attempt == 0


def test_app_close_ends_everything_and_never_reconnects() -> None:
    core = new_core()
    connect(core)
    subscribed(core, "a.b")
    rid, _ = core.publish("a.b", 1, 0.0)
    out = core.close()
    [ended] = of(Ended, out)
    assert ended.error is None
    [reject] = of(Reject, out)
    assert reject.request_id == rid and isinstance(reject.error, ClientClosedError)
    assert core.on_closed(1000, 1.0) == [] and core.state is ClientState.CLOSED


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
    core.on_frame(frame(type="subscribed", topic="room.1", id=request["id"]), 0.0)
    [join] = of(Presence, core.on_frame(frame(type="join", topic="room.1", userId="bob"), 0.0))
    assert join.event.kind is PresenceKind.JOIN and join.event.user_id == "bob"
    core.on_frame(frame(type="join", topic="room.1", userId="carol"), 0.0)
    [leave] = of(Presence, core.on_frame(frame(type="leave", topic="room.1", userId="bob"), 0.0))
    assert leave.event.kind is PresenceKind.LEAVE and entry.members == {"carol"}
    assert core.on_frame(frame(type="join", topic="room.2", userId="x"), 0.0) == []  # not held
    rid, out = core.presence("room.1", 0.0)
    assert sent(out) == [{"type": "presence", "topic": "room.1", "id": rid}]
    answer = core.on_frame(frame(type="presence", topic="room.1", users=["carol", "alice"], id=rid), 0.0)
    assert of(Resolve, answer) == [Resolve(rid, ["carol", "alice"])]


def test_a_presence_query_refused_by_an_older_gateway_rejects() -> None:
    core = new_core()
    connect(core)
    rid, _ = core.presence("room.1", 0.0)
    out = core.on_frame(frame(type="error", code="bad_request", message="unknown type", id=rid), 0.0)
    [reject] = of(Reject, out)
    assert isinstance(reject.error, ServerError) and reject.error.code == "bad_request"


def test_auth_timeout_aborts_the_attempt() -> None:
    core = new_core(auth_timeout=2.0)
    core.start()
    core.on_open(TOKEN, 0.0, WALL)
    assert core.deadline == 2.0
    assert of(Abort, core.on_timer(2.0))


def test_unknown_and_broken_frames_do_not_break_the_connection() -> None:
    core = new_core()
    connect(core)
    assert core.on_frame(frame(type="from_the_future"), 0.0) == []
    out = core.on_frame("not json", 0.0)
    assert core.state is ClientState.CONNECTED and all(not isinstance(o, Abort) for o in out)
