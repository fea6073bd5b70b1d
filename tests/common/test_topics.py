from __future__ import annotations

import asyncio

import pytest
from nats.aio.msg import Msg

from herald_common.errors import ErrorCode, HeraldError
from herald_common.topics import (
    covers,
    is_reserved,
    live_subject,
    matches,
    pattern_subject,
    subject_topic,
    topic_subject,
    validate_pattern,
    validate_topic,
)
from tests.support.natsclients import connect_nats

VALID_TOPICS = [
    "a",
    "messages",
    "messages.user.alice",
    "A-b_c.9",
    ".".join(["t"] * 16),
    "x" * 255,
    ".".join(["abcdefghijklmno"] * 16),  # 16 tokens, 255 characters
]

INVALID_TOPICS = [
    "",
    ".",
    "a.",
    ".a",
    "a..b",
    "a b",
    "a.b c",
    "ü",
    "a/b",
    "a.*",
    "a.**",
    "*",
    "a.>",
    ">",
    "x" * 256,
    ".".join(["t"] * 17),
    "a\n",
    "a\x00b",
    "a.$b",
]


@pytest.mark.parametrize("topic", VALID_TOPICS)
def test_valid_topics(topic: str) -> None:
    assert validate_topic(topic) == topic
    assert validate_pattern(topic) == topic


@pytest.mark.parametrize("topic", INVALID_TOPICS)
def test_invalid_topics(topic: str) -> None:
    with pytest.raises(HeraldError) as info:
        validate_topic(topic)
    assert info.value.code is ErrorCode.INVALID_TOPIC


@pytest.mark.parametrize("value", [None, 3, ["a"], b"a"])
def test_non_string_topics(value: object) -> None:
    with pytest.raises(HeraldError):
        validate_topic(value)
    with pytest.raises(HeraldError):
        validate_pattern(value)


@pytest.mark.parametrize(
    "pattern",
    ["*", "**", "a.*", "*.b", "a.*.c", "a.**", "*.**", "*.*.*", ".".join(["*"] * 16), ".".join(["*"] * 15 + ["**"])],
)
def test_valid_patterns(pattern: str) -> None:
    assert validate_pattern(pattern) == pattern


@pytest.mark.parametrize(
    "pattern",
    ["**.a", "a.**.b", "a.**.**", "a*", "a.b*", "a.>", ">", "a.***", ".".join(["*"] * 17), "", "a..*", "*."],
)
def test_invalid_patterns(pattern: str) -> None:
    with pytest.raises(HeraldError) as info:
        validate_pattern(pattern)
    assert info.value.code is ErrorCode.INVALID_TOPIC


def test_error_message_is_bounded() -> None:
    with pytest.raises(HeraldError) as info:
        validate_topic("y" * 10_000)
    assert len(info.value.message) < 200


def test_subject_mapping() -> None:
    assert topic_subject("a.b") == "topics.a.b"
    assert pattern_subject("a.*.**") == "topics.a.*.>"
    assert live_subject("messages.user.bob") == "live.messages.user.bob"
    assert live_subject("a.**") == "live.a.>"
    assert subject_topic("topics.a.b") == "a.b"
    assert subject_topic("live.a.b") == "a.b"
    with pytest.raises(ValueError, match="not a topic subject"):
        subject_topic("events.message.sent")


# (pattern, topic, expected) — checked against our matcher and against a real nats-server.
MATCH_TABLE = [
    ("a", "a", True),
    ("a", "b", False),
    ("a", "a.b", False),
    ("a.b", "a", False),
    ("*", "a", True),
    ("*", "a.b", False),
    ("**", "a", True),
    ("**", "a.b.c", True),
    ("a.*", "a.b", True),
    ("a.*", "a", False),
    ("a.*", "a.b.c", False),
    ("a.**", "a", False),
    ("a.**", "a.b", True),
    ("a.**", "a.b.c.d", True),
    ("*.b", "a.b", True),
    ("*.b", "a.c", False),
    ("a.*.c", "a.b.c", True),
    ("a.*.c", "a.b.d", False),
    ("a.*.**", "a.b", False),
    ("a.*.**", "a.b.c", True),
    ("*.*", "a.b", True),
    ("*.*", "a.b.c", False),
    ("messages.user.*", "messages.user.alice", True),
    ("messages.user.*", "messages.channel.c1", False),
    ("messages.**", "messages", False),
    ("messages.**", "messages.user.alice", True),
]


@pytest.mark.parametrize(("pattern", "topic", "expected"), MATCH_TABLE)
def test_matches_table(pattern: str, topic: str, expected: bool) -> None:
    assert matches(pattern, topic) is expected


async def test_matches_agrees_with_nats(nats_url: str) -> None:
    """Every row of the table is also what a real nats-server delivers."""
    nc = await connect_nats(nats_url)
    try:
        received: dict[int, list[str]] = {i: [] for i in range(len(MATCH_TABLE))}
        for i, (pattern, _, _) in enumerate(MATCH_TABLE):

            async def on_msg(msg: Msg, i: int = i) -> None:
                received[i].append(subject_topic(msg.subject))

            await nc.subscribe(live_subject(pattern), cb=on_msg)
        await nc.flush()
        topics = sorted({topic for _, topic, _ in MATCH_TABLE})
        for topic in topics:
            await nc.publish("live." + topic, b"x")
        await nc.flush()
        await asyncio.sleep(0.3)
        for i, (pattern, topic, expected) in enumerate(MATCH_TABLE):
            assert (topic in received[i]) is expected, (pattern, topic)
            assert sorted(received[i]) == sorted(t for t in topics if matches(pattern, t)), pattern
    finally:
        await nc.close()


@pytest.mark.parametrize(
    ("outer", "inner", "expected"),
    [
        ("a.b", "a.b", True),
        ("a.*", "a.b", True),
        ("a.*", "a.*", True),
        ("a.b", "a.*", False),
        ("a.**", "a.b.c", True),
        ("a.**", "a.*", True),
        ("a.**", "a.**", True),
        ("a.*", "a.**", False),
        ("**", "anything.at.all", True),
        ("*.b", "a.*", False),
        ("a.*.c", "a.*.c", True),
        ("a.*.c", "a.**", False),
        ("messages.user.alice", "messages.user.*", False),
    ],
)
def test_covers(outer: str, inner: str, expected: bool) -> None:
    assert covers(outer, inner) is expected


@pytest.mark.parametrize("inner", ["a.b", "a.b.c", "a.x.c", "z", "a", "a.b.c.d"])
@pytest.mark.parametrize("outer", ["a.*", "a.**", "*.b", "a.*.c", "**", "a.b"])
def test_covers_implies_matches(outer: str, inner: str) -> None:
    """For concrete topics, covering is exactly matching."""
    assert covers(outer, inner) is matches(outer, inner)


@pytest.mark.parametrize(
    ("topic", "reserved"),
    [
        ("messages", True),
        ("messages.user.alice", True),
        ("messages.channel.c1", True),
        ("messages.anything.else", True),
        ("messagesx", False),
        ("messages-a.b", False),
        ("Messages.user.alice", False),
        ("chat.messages", False),
        ("a.messages.b", False),
        ("messages.anything.else.below", True),
        ("my.messages", False),
        ("orders.messages.user.alice", False),
    ],
)
def test_the_messages_namespace_is_reserved(topic: str, reserved: bool) -> None:
    assert is_reserved(topic) is reserved
