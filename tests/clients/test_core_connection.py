"""The sans-I/O core's connection: auth, pings, tokens, close codes, backoff, requests; no socket, no clock."""

from __future__ import annotations

import pytest

from herald_client.errors import (
    AuthenticationError,
    ClientClosedError,
    ConnectionLostError,
    DisconnectedByOperatorError,
    IllegalTransitionError,
    RequestTimeoutError,
    ServerError,
)
from herald_client.messages import PublishResult
from herald_client.outputs import (
    Abort,
    Ended,
    FetchToken,
    ReconnectIn,
    Reject,
    Resolve,
    Stopped,
)
from herald_client.states import ClientState
from tests.clients.corehelp import TOKEN, WALL, connect, frame, msg, new_core, of, sent, subscribed
from tests.clients.test_tokens_frames import jwt


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
    assert of(Abort, core.on_frame(frame(type="error", code="unauthorized", message="invalid token"), 3.8)) == []
    assert of(Abort, core.on_timer(4.7)) == []  # it may still be answered ...
    [abort] = of(Abort, core.on_timer(4.8))  # ... but not a second after the refusal
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


def test_no_liveness_verdict_while_the_app_buffer_holds_reading_back() -> None:
    core = new_core(ping_interval=5.0, ping_timeout=3.0)
    connect(core)
    core.pause_reading(True, 1.0)
    deadlines = [core.deadline]  # none: nothing to time while nothing can be read
    assert core.on_timer(20.0) == []
    core.pause_reading(False, 20.0)
    deadlines.append(core.deadline)
    assert deadlines == [None, 25.0]  # the silence counts from the resume
    assert sent(core.on_timer(25.0)) == [{"type": "ping"}]


def test_an_expiry_notice_racing_a_refresh_does_not_drop_the_socket() -> None:
    short = jwt({"sub": "alice", "exp": WALL + 4, "iat": WALL})
    core = new_core(refreshable=True)
    connect(core, token=short)
    core.on_timer(3.6)
    core.on_fresh_token(jwt({"sub": "alice", "exp": WALL + 60, "iat": WALL}), WALL + 3.7, 3.7)
    notice = core.on_frame(frame(type="error", code="unauthorized", message="token expired; send auth"), 4.0)
    assert of(Abort, notice) == []
    assert core.on_frame(frame(type="auth_success", userId="alice"), 4.1) == []
    assert of(Abort, core.on_timer(5.5)) == []  # the refresh went through: no refusal verdict
    assert core.state is ClientState.CONNECTED


def test_a_subscribe_answer_stuck_behind_a_full_buffer_does_not_time_out() -> None:
    core = new_core(request_timeout=2.0)
    connect(core)
    subscribed(core, "a.b")
    core.on_frame(msg("a.b", 3), 0.0)
    core.on_closed(1006, 0.0)
    [request] = sent(connect(core, 1.0))
    assert request["since"]["offset"] == 3
    core.pause_reading(True, 1.5)
    assert core.deadline is None or core.deadline > 100
    assert of(Abort, core.on_timer(10.0)) == []
    core.pause_reading(False, 10.0)
    assert core.deadline == 12.0
    answer = core.on_frame(frame(type="subscribed", topic="a.b", id=request["id"], recovered=True), 10.5)
    assert of(Resolve, answer) == [] and core.subs["a.b"].recovered is True


def test_a_subscribe_that_times_out_after_an_unsubscribe_is_ignored() -> None:
    core = new_core(request_timeout=2.0)
    connect(core)
    subscribed(core, "a.b")
    core.on_closed(1006, 0.0)
    connect(core, 1.0)
    core.unsubscribe("a.b", 1.2)
    assert of(Abort, core.on_timer(3.5)) == []
