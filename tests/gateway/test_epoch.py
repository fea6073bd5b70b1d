"""The epoch the gateway stamps on messages, and the bounds of a client's ``since``."""

from __future__ import annotations

import datetime

import pytest
from nats.js.api import StreamConfig, StreamInfo, StreamState

from herald_common.streams import epoch_of
from herald_gateway.actions import AddInterest, BeginRecovery, Replay
from herald_gateway.session import AuthState
from tests.gateway.helpers import authed, frames, text


def info(created: datetime.datetime | None) -> StreamInfo:
    state = StreamState(messages=0, bytes=0, first_seq=0, last_seq=0, consumer_count=0)
    return StreamInfo(config=StreamConfig(name="S"), state=state, created=created)


def test_epoch_is_the_creation_instant_in_microseconds() -> None:
    created = datetime.datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=datetime.UTC)
    assert epoch_of(info(created)) == str(int(created.timestamp()) * 1_000_000 + 678901)
    later = created + datetime.timedelta(microseconds=1)
    assert epoch_of(info(later)) != epoch_of(info(created))
    assert epoch_of(info(None)) == "0"


@pytest.mark.parametrize(("offset", "ok"), [(0, True), (2**64 - 1, True), (2**64, False), (-1, False)])
def test_since_offset_bounds(offset: int, ok: bool) -> None:
    session = authed()
    frame = {"type": "subscribe", "topic": "messages.user.alice", "id": 1, "since": {"offset": offset, "epoch": "e"}}
    actions = session.on_text(text(frame), 0.0)
    if ok:
        assert [type(a) for a in actions] == [BeginRecovery, AddInterest, Replay]
    else:
        [answer] = frames(actions)
        assert (answer["type"], answer["code"], answer["id"]) == ("error", "bad_request", 1)
    assert session.state is AuthState.AUTHENTICATED
