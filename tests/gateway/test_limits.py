"""Rate and connection limits as plain bookkeeping, and how a session applies them."""

from __future__ import annotations

from typing import Any

import pytest

from herald_common.errors import CloseCode
from herald_gateway.actions import Close
from herald_gateway.limits import STRIKE_WINDOW, Counter, FrameLimiter, FrameVerdict, KeyedBuckets, TokenBucket
from herald_gateway.session import AuthState, Limits, Session
from tests.gateway.helpers import T0, VERIFIER, frames, text, token


def closes(actions: list[Any]) -> list[CloseCode]:
    return [a.code for a in actions if isinstance(a, Close)]


def state_of(session: Session) -> AuthState:
    return session.state


def test_bucket_allows_burst_then_rate() -> None:
    bucket = TokenBucket(rate=2.0, burst=3, now=0.0)
    assert [bucket.take(0.0) for _ in range(4)] == [True, True, True, False]
    assert bucket.take(0.25) is False  # half a token
    assert bucket.take(0.5) is True
    assert bucket.take(0.5) is False
    # A long pause refills only up to the burst.
    assert [bucket.take(100.0) for _ in range(4)] == [True, True, True, False]


def test_bucket_ignores_time_going_backwards() -> None:
    bucket = TokenBucket(rate=1.0, burst=1, now=10.0)
    assert bucket.take(10.0)
    assert not bucket.take(5.0)
    assert bucket.take(11.0)


def test_bucket_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="rate > 0"):
        TokenBucket(rate=0.0, burst=1, now=0.0)
    with pytest.raises(ValueError, match="rate > 0"):
        TokenBucket(rate=1.0, burst=0, now=0.0)


def test_keyed_buckets_are_per_key() -> None:
    buckets = KeyedBuckets(rate=1.0, burst=2)
    assert [buckets.take("a", 0.0) for _ in range(3)] == [True, True, False]
    assert buckets.take("b", 0.0)
    assert not buckets.take("a", 0.5)
    assert buckets.take("a", 1.0)


def test_keyed_buckets_evict_idle_keys() -> None:
    buckets = KeyedBuckets(rate=1.0, burst=2)
    for i in range(1000):
        buckets.take(f"10.0.{i // 256}.{i % 256}", float(i))
    # Every key had refilled two seconds after its one use, so a scan leaves few behind.
    assert len(buckets) <= 3


def test_keyed_buckets_are_bounded_even_when_busy() -> None:
    buckets = KeyedBuckets(rate=0.001, burst=1, max_keys=50)
    for i in range(1000):
        assert buckets.take(f"ip{i}", 0.0)
    assert len(buckets) == 50
    # Recent keys are still limited.
    assert not buckets.take("ip999", 0.0)


def test_counter_caps_and_releases() -> None:
    counter = Counter(limit=2)
    assert counter.acquire("x") and counter.acquire("x")
    assert not counter.acquire("x")
    assert counter.acquire("y")
    counter.release("x")
    assert counter.acquire("x")
    for _ in range(2):
        counter.release("x")
    counter.release("y")
    assert len(counter) == 0
    with pytest.raises(RuntimeError):
        counter.release("x")


def test_frame_limiter_rejects_then_closes() -> None:
    limiter = FrameLimiter(rate=1.0, burst=2, max_strikes=3, now=0.0)
    verdicts = [limiter.check(0.0) for _ in range(6)]
    assert verdicts == [FrameVerdict.ACCEPT] * 2 + [FrameVerdict.REJECT] * 3 + [FrameVerdict.CLOSE]


def test_frame_limiter_forgets_old_strikes() -> None:
    limiter = FrameLimiter(rate=1.0, burst=1, max_strikes=2, now=0.0)
    assert limiter.check(0.0) is FrameVerdict.ACCEPT
    assert limiter.check(0.1) is FrameVerdict.REJECT
    assert limiter.check(0.2) is FrameVerdict.REJECT
    later = 0.2 + STRIKE_WINDOW + 1.0
    assert limiter.check(later) is FrameVerdict.ACCEPT
    assert limiter.check(later) is FrameVerdict.REJECT
    assert limiter.check(later) is FrameVerdict.REJECT
    assert limiter.check(later) is FrameVerdict.CLOSE


LIMITED = Limits(
    auth_timeout=5.0,
    refresh_grace=30.0,
    max_subscriptions=3,
    frames_per_second=1.0,
    frames_burst=3,
    rate_limited_frames_max=2,
)
PING = text({"type": "ping"})


def test_session_answers_frames_over_the_rate_with_rate_limited() -> None:
    session = Session(VERIFIER, LIMITED, T0)
    assert frames(session.on_text(text({"type": "auth", "token": token()}), T0))[0]["type"] == "auth_success"
    assert frames(session.on_text(PING, T0)) == [{"type": "pong"}]
    assert frames(session.on_text(PING, T0)) == [{"type": "pong"}]
    limited = session.on_text(PING, T0)
    assert frames(limited) == [{"type": "error", "code": "rate_limited", "message": "too many frames; slow down"}]
    assert closes(limited) == []
    # A rate-limited subscribe is not processed at all.
    dropped = session.on_text(text({"type": "subscribe", "topic": "messages.user.alice"}), T0)
    assert [f["code"] for f in frames(dropped)] == ["rate_limited"]
    assert "messages.user.alice" not in session.subscriptions
    # One second later one more frame is allowed.
    assert frames(session.on_text(PING, T0 + 1.0)) == [{"type": "pong"}]


def test_session_closes_4008_when_the_client_keeps_going() -> None:
    session = Session(VERIFIER, LIMITED, T0)
    session.on_text(text({"type": "auth", "token": token()}), T0)
    session.on_text(text({"type": "subscribe", "topic": "messages.user.alice"}), T0)
    session.on_text(PING, T0)
    session.on_binary(b"x", T0)  # binary frames count as well
    session.on_text(PING, T0)
    last = session.on_text(PING, T0)
    assert closes(last) == [CloseCode.POLICY_LIMIT]
    assert state_of(session) is AuthState.CLOSED
    assert session.subscriptions.clear() == []


def test_per_user_limit_is_checked_at_auth_and_released_on_close() -> None:
    users = Counter(limit=2)
    first = Session(VERIFIER, LIMITED, T0, users)
    second = Session(VERIFIER, LIMITED, T0, users)
    third = Session(VERIFIER, LIMITED, T0, users)
    other = Session(VERIFIER, LIMITED, T0, users)
    auth = text({"type": "auth", "token": token("alice")})
    assert frames(first.on_text(auth, T0))[0]["type"] == "auth_success"
    assert frames(second.on_text(auth, T0))[0]["type"] == "auth_success"
    refused = third.on_text(auth, T0)
    assert [f["code"] for f in frames(refused)] == ["rate_limited"]
    assert closes(refused) == [CloseCode.POLICY_LIMIT]
    assert frames(other.on_text(text({"type": "auth", "token": token("bob")}), T0))[0]["type"] == "auth_success"
    assert users.count("alice") == 2
    # A refresh on the same connection takes no second slot.
    assert frames(first.on_text(auth, T0 + 0.5))[0]["type"] == "auth_success"
    assert users.count("alice") == 2
    first.on_disconnect()
    assert users.count("alice") == 1
    again = Session(VERIFIER, LIMITED, T0, users)
    assert frames(again.on_text(auth, T0))[0]["type"] == "auth_success"


@pytest.mark.parametrize("how", ["disconnect", "slow", "expiry", "rate"])
def test_every_close_path_gives_the_user_slot_back(how: str) -> None:
    users = Counter(limit=5)
    session = Session(VERIFIER, LIMITED, T0, users)
    session.on_text(text({"type": "auth", "token": token("alice", ttl=60)}), T0)
    assert users.count("alice") == 1
    if how == "disconnect":
        session.on_disconnect()
    elif how == "slow":
        session.on_slow_consumer()
    elif how == "expiry":
        for _ in range(2):  # expiry, then the end of the grace period
            deadline = session.deadline
            assert deadline is not None
            session.on_timer(deadline)
    else:
        for _ in range(10):
            session.on_text(PING, T0)
    assert state_of(session) is AuthState.CLOSED
    assert users.count("alice") == 0
    session.on_disconnect()
    assert users.count("alice") == 0


def test_failed_auth_takes_no_user_slot() -> None:
    users = Counter(limit=1)
    session = Session(VERIFIER, LIMITED, T0, users)
    session.on_text(text({"type": "auth", "token": "garbage"}), T0)
    assert len(users) == 0


def test_websocket_pings_and_pongs_count_against_the_frame_rate() -> None:
    session = Session(VERIFIER, LIMITED, T0)
    session.on_text(text({"type": "auth", "token": token()}), T0)
    assert session.on_control(1, T0) == []  # auth and this within the burst of 3: websockets answers it
    assert frames(session.on_text(PING, T0)) == [{"type": "pong"}]
    limited = session.on_control(1, T0)
    assert [f["code"] for f in frames(limited)] == ["rate_limited"]
    assert closes(limited) == []
    # A flood in one read: one more strike than tolerated closes, and the rest is ignored.
    flood = session.on_control(10_000, T0)
    assert [f["code"] for f in frames(flood)] == ["rate_limited"] * 2
    assert closes(flood) == [CloseCode.POLICY_LIMIT]
    assert state_of(session) is AuthState.CLOSED
    assert session.on_control(5, T0) == []


def test_control_frames_before_auth_are_counted_but_not_fatal() -> None:
    session = Session(VERIFIER, LIMITED, T0)
    assert session.on_control(3, T0) == []
    assert state_of(session) is AuthState.AWAITING_AUTH
    assert closes(session.on_control(3, T0)) == [CloseCode.POLICY_LIMIT]
