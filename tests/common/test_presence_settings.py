"""The presence settings: defaults as documented, and a timeout that one lost heartbeat cannot trip."""

from __future__ import annotations

import pytest

from herald_common.config import ConfigError, load_settings
from herald_common.presence import PresenceEvent, encoder, event_decoder, event_subject


def test_defaults_bound_a_crashed_gateway_s_users_to_16_seconds() -> None:
    s = load_settings({})
    assert (s.presence_grace, s.presence_heartbeat, s.presence_timeout) == (5.0, 5.0, 15.0)
    assert s.presence_max_users == 1000


def test_a_timeout_under_two_heartbeats_is_refused_at_start() -> None:
    with pytest.raises(ConfigError, match=r"HERALD_PRESENCE_TIMEOUT .* at least twice HERALD_PRESENCE_HEARTBEAT"):
        load_settings({"HERALD_PRESENCE_HEARTBEAT": "5", "HERALD_PRESENCE_TIMEOUT": "9"})
    assert load_settings({"HERALD_PRESENCE_HEARTBEAT": "1", "HERALD_PRESENCE_TIMEOUT": "2"}).presence_timeout == 2.0


@pytest.mark.parametrize("name", ["HERALD_PRESENCE_MAX_USERS", "HERALD_PRESENCE_HEARTBEAT"])
def test_zero_is_refused(name: str) -> None:
    with pytest.raises(ConfigError, match=name):
        load_settings({name: "0"})


def test_a_grace_of_zero_announces_leaves_at_once() -> None:
    assert load_settings({"HERALD_PRESENCE_GRACE": "0"}).presence_grace == 0.0


def test_stream_events_are_camel_case_on_per_kind_subjects() -> None:
    event = PresenceEvent(type="leave", topic="room.1", user_id="alice", at=1, gateway="g")
    assert encoder.encode(event) == b'{"type":"leave","topic":"room.1","userId":"alice","at":1,"gateway":"g"}'
    assert event_decoder.decode(encoder.encode(event)) == event
    assert event_subject("join", "room.1") == "presence.join.room.1"
