"""Reading a JWT's exp without verifying it, when to refresh; frame encoding and decoding."""

from __future__ import annotations

import base64
import json

import pytest

from herald_client import frames
from herald_client.tokens import read_times, refresh_in


def jwt(claims: object) -> str:
    def part(value: object) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'HS256', 'typ': 'JWT'})}.{part(claims)}.c2lnbmF0dXJl"


def test_exp_and_iat_are_read_unverified() -> None:
    times = read_times(jwt({"sub": "a", "exp": 1_000_100, "iat": 1_000_000}))
    assert times is not None and times.exp == 1_000_100 and times.iat == 1_000_000


@pytest.mark.parametrize(
    "token",
    [
        "opaque",
        "a.b",
        "a.!!!.c",
        jwt(["not", "an", "object"]),
        jwt({"sub": "a"}),
        jwt({"exp": "soon"}),
        jwt({"exp": True}),
    ],
)
def test_tokens_without_a_numeric_exp_are_never_refreshed(token: str) -> None:
    assert refresh_in(token, 1_000_000.0) is None


def test_refresh_margin_is_a_tenth_of_the_lifetime() -> None:
    token = jwt({"exp": 1_000_004, "iat": 1_000_000})  # 4 s lifetime: refresh 0.4 s early
    assert refresh_in(token, 1_000_000.0) == pytest.approx(3.6)
    assert refresh_in(token, 1_000_002.0) == pytest.approx(1.6)


def test_refresh_margin_is_capped_at_30_seconds() -> None:
    token = jwt({"exp": 1_003_600, "iat": 1_000_000})
    assert refresh_in(token, 1_000_000.0) == pytest.approx(3570.0)


def test_without_iat_the_lifetime_counts_from_now_and_expired_is_due_at_once() -> None:
    assert refresh_in(jwt({"exp": 1_000_100}), 1_000_000.0) == pytest.approx(90.0)
    assert refresh_in(jwt({"exp": 999_000, "iat": 998_000}), 1_000_000.0) == 0.0


def test_client_frames_encode_as_the_protocol_says() -> None:
    since = frames.Since(41, "e1")
    assert json.loads(frames.encode(frames.Subscribe(topic="a.*", id=3, since=since))) == {
        "type": "subscribe",
        "topic": "a.*",
        "id": 3,
        "since": {"offset": 41, "epoch": "e1"},
    }
    assert json.loads(frames.encode(frames.Subscribe(topic="a.b", presence=True))) == {
        "type": "subscribe",
        "topic": "a.b",
        "presence": True,
    }
    assert json.loads(frames.encode(frames.Publish(topic="a.b", data={"x": [1]}, id=9))) == {
        "type": "message",
        "topic": "a.b",
        "data": {"x": [1]},
        "id": 9,
    }
    assert json.loads(frames.encode(frames.Ping())) == {"type": "ping"}


def test_server_frames_decode_ignoring_unknown_fields_and_types() -> None:
    msg = frames.decode('{"type":"message","topic":"a.b","data":{"k":1},"offset":7,"epoch":"e","new":1}')
    assert isinstance(msg, frames.MessageFrame) and msg.data == {"k": 1} and msg.offset == 7
    assert msg.event is None and msg.publisher is None
    auth = frames.decode('{"type":"auth_success","userId":"alice"}')
    assert isinstance(auth, frames.AuthSuccess) and auth.user_id == "alice"
    assert frames.decode('{"type":"from_the_future","x":1}') is None
    join = frames.decode('{"type":"join","topic":"room.1","userId":"bob"}')
    assert isinstance(join, frames.Join) and join.user_id == "bob"
    answer = frames.decode('{"type":"presence","topic":"room.1","count":2,"users":["a","b"],"id":4}')
    assert isinstance(answer, frames.PresenceAnswer) and answer.users == ["a", "b"] and answer.id == 4
    assert answer.count == 2


@pytest.mark.parametrize("raw", ["not json", '{"type":"message","topic":"a"}', "[1]"])
def test_broken_server_frames_raise_frame_error(raw: str) -> None:
    with pytest.raises(frames.FrameError):
        frames.decode(raw)
