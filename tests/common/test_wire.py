from __future__ import annotations

import json

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from herald_common.errors import ErrorCode, HeraldError
from herald_common.jsondepth import MAX_JSON_DEPTH
from herald_common.wire import (
    Auth,
    AuthSuccess,
    Error,
    Message,
    Ping,
    Publication,
    Publish,
    Published,
    Since,
    Subscribe,
    Subscribed,
    Unsubscribe,
    decode_client_frame,
    decode_publication,
    encode,
)


def test_every_client_frame_decodes() -> None:
    assert decode_client_frame('{"type":"auth","token":"t"}') == Auth(token="t")
    assert decode_client_frame(b'{"type":"subscribe","topic":"a.b","id":7}') == Subscribe(topic="a.b", id=7)
    sub = decode_client_frame('{"type":"subscribe","topic":"a","since":{"offset":5,"epoch":"e1"}}')
    assert isinstance(sub, Subscribe) and sub.since == Since(offset=5, epoch="e1")
    assert decode_client_frame('{"type":"unsubscribe","topic":"a","id":"x"}') == Unsubscribe(topic="a", id="x")
    pub = decode_client_frame('{"type":"message","topic":"a","data":{"k":[1,2]},"id":null}')
    assert isinstance(pub, Publish) and bytes(pub.data) == b'{"k":[1,2]}' and pub.id is None
    assert decode_client_frame('{"type":"ping"}') == Ping()


def test_unknown_fields_are_ignored() -> None:
    assert decode_client_frame('{"type":"ping","extra":{"deep":[1]}}') == Ping()


BAD_FRAMES = [
    b"",
    b"not json",
    b"{",
    b"[]",
    b"[1,2]",
    b'"auth"',
    b"42",
    b"null",
    b"{}",
    b'{"type":"nope"}',
    b'{"type":5}',
    b'{"type":null}',
    b'{"type":"auth"}',
    b'{"type":"auth","token":5}',
    b'{"type":"subscribe"}',
    b'{"type":"subscribe","topic":["a"]}',
    b'{"type":"subscribe","topic":"a","since":5}',
    b'{"type":"subscribe","topic":"a","since":{"offset":"x","epoch":"e"}}',
    b'{"type":"subscribe","topic":"a","since":{"offset":1e400,"epoch":"e"}}',
    b'{"type":"unsubscribe","topic":{}}',
    b'{"type":"message","topic":"a"}',
    b'{"type":"message","data":1}',
    b'{"type":"auth","token":"t"}garbage',
    b"\xff\xfe\x00",
    b'{"type":"auth","token":"\xc3\x28"}',
    b'{"type":"ping",' + b'"a":' * 10 + b"1}",
    b'{"type":"message","topic":"a","data":' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    b'{"type":"message","topic":"a","data":' + b'{"a":' * 50_000 + b"1" + b"}" * 50_000 + b"}",
    b'{"type":"subscribe","topic":"a","id":1' + b"0" * 5000 + b"}",
]


@pytest.mark.parametrize("frame", BAD_FRAMES, ids=range(len(BAD_FRAMES)))
def test_bad_frames_are_bad_request(frame: bytes) -> None:
    with pytest.raises(HeraldError) as info:
        decode_client_frame(frame)
    assert info.value.code is ErrorCode.BAD_REQUEST
    assert info.value.message


def test_huge_integers_in_data_survive_round_trip() -> None:
    big = 10**40
    pub = decode_client_frame(json.dumps({"type": "message", "topic": "a", "data": big}))
    assert isinstance(pub, Publish) and json.loads(bytes(pub.data)) == big


@settings(suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.binary(max_size=256))
def test_any_bytes_decode_or_raise_bad_request(data: bytes) -> None:
    try:
        frame = decode_client_frame(data)
    except HeraldError as exc:
        assert exc.code is ErrorCode.BAD_REQUEST
    else:
        assert isinstance(frame, Auth | Subscribe | Unsubscribe | Publish | Ping)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4),
    max_leaves=10,
)


@settings(suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.dictionaries(st.sampled_from(["type", "topic", "token", "id", "since", "data"]), json_values))
def test_any_json_object_decodes_or_raises_bad_request(obj: dict[str, object]) -> None:
    try:
        decode_client_frame(json.dumps(obj))
    except HeraldError as exc:
        assert exc.code is ErrorCode.BAD_REQUEST


def test_server_frames_encode_to_the_contract() -> None:
    assert json.loads(encode(AuthSuccess(user_id="u"))) == {"type": "auth_success", "userId": "u"}
    assert json.loads(encode(Subscribed(topic="a"))) == {"type": "subscribed", "topic": "a"}
    assert json.loads(encode(Subscribed(topic="a", id=1, recovered=False))) == {
        "type": "subscribed",
        "topic": "a",
        "id": 1,
        "recovered": False,
    }
    frame = Message(topic="a", data=msgspec.Raw(b'{"x":1}'), offset=3, epoch="e", event="message.sent")
    assert json.loads(encode(frame)) == {
        "type": "message",
        "topic": "a",
        "data": {"x": 1},
        "offset": 3,
        "epoch": "e",
        "event": "message.sent",
    }
    assert json.loads(encode(Error(code="forbidden", message="no", id="7"))) == {
        "type": "error",
        "code": "forbidden",
        "message": "no",
        "id": "7",
    }


def test_publication_round_trip_keeps_data_bytes() -> None:
    body = encode(Publication(data=msgspec.Raw(b"[1, 2]"), event="message.sent", id="e1"))
    pub = decode_publication(body)
    assert bytes(pub.data) == b"[1, 2]" and pub.event == "message.sent" and pub.id == "e1"


def test_published_and_publisher_encode_to_the_contract() -> None:
    assert json.loads(encode(Published(topic="a.b", offset=12, id="p1"))) == {
        "type": "published",
        "topic": "a.b",
        "offset": 12,
        "id": "p1",
    }
    assert json.loads(encode(Published(topic="a.b", offset=12))) == {"type": "published", "topic": "a.b", "offset": 12}
    frame = Message(topic="a", data=msgspec.Raw(b"1"), offset=3, epoch="e", publisher="alice")
    assert json.loads(encode(frame))["publisher"] == "alice"
    body = encode(Publication(data=msgspec.Raw(b"1"), id="x", publisher="alice"))
    assert decode_publication(body).publisher == "alice"
    # Older bodies and frames without it stay as they were.
    assert "publisher" not in json.loads(encode(Publication(data=msgspec.Raw(b"1"))))


def nested_data(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize("kind", [bytes, str])
def test_client_frames_nested_beyond_the_limit_are_bad_request(kind: type) -> None:
    # The frame object is one level; ``data`` may take the other 63.
    ok = f'{{"type":"message","topic":"a","data":{nested_data(MAX_JSON_DEPTH - 1)}}}'
    deep = f'{{"type":"message","topic":"a","data":{nested_data(MAX_JSON_DEPTH)}}}'
    assert isinstance(decode_client_frame(ok.encode() if kind is bytes else ok), Publish)
    with pytest.raises(HeraldError) as info:
        decode_client_frame(deep.encode() if kind is bytes else deep)
    assert info.value.code is ErrorCode.BAD_REQUEST
    assert "nested" in info.value.message


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH * 2, 5_000, 200_000])
def test_a_stored_publication_of_any_depth_decodes_or_raises_a_decode_error(depth: int) -> None:
    body = f'{{"data":{nested_data(depth)}}}'.encode()
    try:
        decoded = decode_publication(body)
    except msgspec.DecodeError as exc:
        assert "nested" in str(exc) or depth > 1000
    else:
        assert bytes(decoded.data).startswith(b"[")
