from __future__ import annotations

import pytest

from herald_common.access import NeedsMembership, Verdict, authorize_publish, authorize_subscribe, own_topic
from herald_common.tokens import Claims

ALICE = Claims(sub="alice", exp=0)
ADMIN = Claims(sub="root", exp=0, roles=frozenset({"admin"}))
GRANTED = Claims(sub="alice", exp=0, topics=("news.**", "scores.*.live"))
PUBLISHER = Claims(sub="alice", exp=0, publish=("chat.*", "room.a.b"))


@pytest.mark.parametrize(
    ("claims", "pattern", "expected"),
    [
        (ADMIN, "messages", Verdict.ALLOW),
        (ADMIN, "messages.**", Verdict.ALLOW),
        (ADMIN, "messages.user.bob", Verdict.ALLOW),
        (ADMIN, "*.*.*", Verdict.ALLOW),
        (ALICE, "messages.user.alice", Verdict.ALLOW),
        (ALICE, "messages.user.bob", Verdict.DENY),
        (ALICE, "messages.user.*", Verdict.DENY),
        (ALICE, "messages.user.**", Verdict.DENY),
        (ALICE, "messages.**", Verdict.DENY),
        (ALICE, "messages", Verdict.DENY),
        (ALICE, "*.user.alice", Verdict.DENY),
        (ALICE, "*.user.bob", Verdict.DENY),
        (ALICE, "messages.channel.*", Verdict.DENY),
        (ALICE, "messages.channel.**", Verdict.DENY),
        (ALICE, "messages.channel.c1.extra", Verdict.DENY),
        (ALICE, "news.today", Verdict.DENY),
        (GRANTED, "news.today", Verdict.ALLOW),
        (GRANTED, "news.**", Verdict.ALLOW),
        (GRANTED, "news.*.x", Verdict.ALLOW),
        (GRANTED, "news", Verdict.DENY),
        (GRANTED, "scores.*.live", Verdict.ALLOW),
        (GRANTED, "scores.nba.live", Verdict.ALLOW),
        (GRANTED, "scores.**", Verdict.DENY),
        (GRANTED, "scores.nba.dead", Verdict.DENY),
    ],
)
def test_subscribe_table(claims: Claims, pattern: str, expected: Verdict) -> None:
    assert authorize_subscribe(claims, pattern) is expected


def test_concrete_channel_needs_membership() -> None:
    assert authorize_subscribe(ALICE, "messages.channel.c1") == NeedsMembership("c1")


def test_channel_granted_by_topics_claim_needs_no_lookup() -> None:
    claims = Claims(sub="alice", exp=0, topics=("messages.channel.*",))
    assert authorize_subscribe(claims, "messages.channel.c1") is Verdict.ALLOW


@pytest.mark.parametrize("sub", ["*", "**", "a.b", "", "bob smith"])
def test_sub_that_is_not_one_token_has_no_personal_topic(sub: str) -> None:
    assert own_topic(sub) is None
    claims = Claims(sub=sub, exp=0)
    assert authorize_subscribe(claims, "messages.user.*") is Verdict.DENY
    assert authorize_subscribe(claims, "messages.user.**") is Verdict.DENY


def test_malformed_grants_grant_nothing() -> None:
    claims = Claims(sub="alice", exp=0, topics=("**.x", "a..b", ""), publish=("a.**.b", ""))
    assert authorize_subscribe(claims, "a.x") is Verdict.DENY
    assert not authorize_publish(claims, "a.c.b")


@pytest.mark.parametrize(
    ("topic", "allowed"),
    [("chat.room1", True), ("chat.room1.x", False), ("room.a.b", True), ("room.a.c", False), ("messages", False)],
)
def test_publish_table(topic: str, allowed: bool) -> None:
    assert authorize_publish(PUBLISHER, topic) is allowed


def test_admin_role_alone_does_not_grant_socket_publishing() -> None:
    assert not authorize_publish(ADMIN, "chat.room1")
