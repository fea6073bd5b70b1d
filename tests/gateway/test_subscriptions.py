from __future__ import annotations

import pytest

from herald_gateway.subscriptions import Grant, SubscriptionSet, intersects


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("a.b", "a.b", True),
        ("a.b", "a.c", False),
        ("a.*", "a.b", True),
        ("a.*", "*.b", True),
        ("a.*", "a.b.c", False),
        ("a.**", "a.b.c", True),
        ("a.**", "a", False),
        ("**", "x.y.z", True),
        ("a.**", "*.b", True),
        ("a.**", "b.**", False),
        ("*.*", "a", False),
    ],
)
def test_intersects(a: str, b: str, expected: bool) -> None:
    assert intersects(a, b) is expected
    assert intersects(b, a) is expected


def test_overlapping_patterns_deliver_once_through_the_smallest() -> None:
    subs = SubscriptionSet()
    subs.add("a.*", Grant.TOKEN)
    subs.add("a.b", Grant.TOKEN)
    subs.add("x.y", Grant.TOKEN)
    # "a.*" < "a.b": a message on a.b arrives twice and goes out once.
    delivered = [p for p in ("a.*", "a.b") if subs.wants(p, "a.b")]
    assert delivered == ["a.*"]
    assert subs.wants("a.*", "a.c")
    assert subs.wants("x.y", "x.y")


def test_removing_an_overlap_restores_direct_delivery() -> None:
    subs = SubscriptionSet()
    subs.add("a.*", Grant.TOKEN)
    subs.add("a.b", Grant.TOKEN)
    assert subs.remove("a.*")
    assert subs.wants("a.b", "a.b")
    assert not subs.wants("a.*", "a.b")
    assert not subs.remove("a.*")


def test_add_is_idempotent_and_keeps_first_grant() -> None:
    subs = SubscriptionSet()
    assert subs.add("messages.channel.c1", Grant.MEMBERSHIP)
    assert not subs.add("messages.channel.c1", Grant.TOKEN)
    assert subs.grant("messages.channel.c1") is Grant.MEMBERSHIP
    assert len(subs) == 1
    assert subs.clear() == ["messages.channel.c1"]
    assert len(subs) == 0
