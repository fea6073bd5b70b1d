from __future__ import annotations

import json

import msgspec

from herald_bridge.mapping import message_id, publication_for, topics_for
from herald_common.events import CHANNEL_ACCESS_REVOKED, MESSAGE_DELETED, MESSAGE_SENT, TOPIC_PUBLISHED, Event
from herald_common.wire import encode


def event(type_: str, **data: object) -> Event:
    return Event(id="e1", type=type_, occurred_at="2026-01-01T00:00:00Z", data=dict(data))


def message(**fields: object) -> dict[str, object]:
    base: dict[str, object] = {"id": "m1", "senderId": "alice", "recipientId": None, "channelId": None, "content": "hi"}
    base.update(fields)
    return base


def test_direct_message_reaches_everyone_involved() -> None:
    ev = event(MESSAGE_SENT, **message(recipientId="bob"))
    assert topics_for(ev) == ["messages", "messages.user.alice", "messages.user.bob"]


def test_channel_message() -> None:
    ev = event(MESSAGE_SENT, **message(channelId="c1"))
    assert topics_for(ev) == ["messages", "messages.user.alice", "messages.channel.c1"]


def test_message_to_self_is_not_duplicated() -> None:
    ev = event(MESSAGE_SENT, **message(recipientId="alice"))
    assert topics_for(ev) == ["messages", "messages.user.alice"]


def test_updates_and_deletes_reach_the_same_topics() -> None:
    sent = topics_for(event(MESSAGE_SENT, **message(recipientId="bob", channelId="c")))
    assert topics_for(event(MESSAGE_DELETED, **message(recipientId="bob", channelId="c"))) == sent


def test_ids_that_are_not_topic_tokens_are_skipped() -> None:
    ev = event(MESSAGE_SENT, **message(senderId="a.b", recipientId="x y", channelId=""))
    assert topics_for(ev) == ["messages"]


def test_publish_event_reaches_its_topic() -> None:
    ev = event(TOPIC_PUBLISHED, topic="news.sport", data={"score": 1})
    assert topics_for(ev) == ["news.sport"]
    pub = publication_for(ev)
    assert json.loads(bytes(pub.data)) == {"score": 1}
    assert pub.event is msgspec.UNSET and pub.id == "e1"


def test_bad_publish_topic_reaches_nothing() -> None:
    assert topics_for(event(TOPIC_PUBLISHED, topic="a.*", data=1)) == []
    assert topics_for(event(TOPIC_PUBLISHED, data=1)) == []


def test_other_events_reach_no_topic() -> None:
    assert topics_for(event(CHANNEL_ACCESS_REVOKED, channelId="c", userId="u")) == []
    assert topics_for(event("something.else")) == []


def test_message_publication_names_the_event() -> None:
    ev = event(MESSAGE_SENT, **message())
    body = json.loads(encode(publication_for(ev)))
    assert body == {"data": message(), "event": "message.sent", "id": "e1"}


def test_message_ids_differ_per_topic_and_are_stable() -> None:
    ev = event(MESSAGE_SENT, **message())
    assert message_id(ev, "a") == message_id(ev, "a") != message_id(ev, "b")
