"""Resume bookkeeping: per-topic dedup, and where overlapping subscriptions resume."""

from __future__ import annotations

import random

from herald_client.resume import Cursor, Position, Verdict, resume_point
from herald_client.topics import intersects, matches


def test_duplicates_are_dropped_per_topic() -> None:
    cursor = Cursor()
    assert cursor.accept("a.x", 5, "e") is Verdict.DELIVER
    assert cursor.accept("a.y", 3, "e") is Verdict.DELIVER  # another topic: its own order
    assert cursor.accept("a.x", 5, "e") is Verdict.DUPLICATE
    assert cursor.accept("a.x", 4, "e") is Verdict.DUPLICATE
    assert cursor.accept("a.y", 6, "e") is Verdict.DELIVER
    assert cursor.position == Position(6, "e")
    assert cursor.marks == {"a.x": 5, "a.y": 6}


def test_a_new_epoch_resets_the_marks_and_is_reported() -> None:
    cursor = Cursor()
    cursor.accept("a", 90, "e1")
    assert cursor.accept("a", 2, "e2") is Verdict.DELIVER_NEW_EPOCH
    assert cursor.accept("a", 3, "e2") is Verdict.DELIVER
    assert cursor.position == Position(3, "e2")


def test_a_lone_subscription_resumes_from_its_last_message() -> None:
    cursor = Cursor()
    assert resume_point("a.*", [("a.*", cursor)]) is None
    cursor.accept("a.x", 10, "e")
    point = resume_point("a.*", [("a.*", cursor)])
    assert point is not None and point.since == Position(10, "e") and point.own


def test_overlapping_subscriptions_resume_from_the_smallest_position_on_their_own_topics() -> None:
    wide, narrow, other = Cursor(), Cursor(), Cursor()
    for topic, offset in [("news.sport", 4), ("news.tech", 9), ("news.sport", 11), ("news.tech", 15)]:
        wide.accept(topic, offset, "e")
    narrow.accept("news.sport", 4, "e")  # subscribed later / lagging
    other.accept("weather.x", 1, "e")
    cursors = [("news.*", wide), ("news.sport", narrow), ("weather.*", other)]
    wide_point = resume_point("news.*", cursors)
    narrow_point = resume_point("news.sport", cursors)
    assert wide_point is not None and wide_point.since == Position(4, "e") and wide_point.own
    assert narrow_point is not None and narrow_point.since == Position(4, "e")
    weather = resume_point("weather.*", cursors)
    assert weather is not None and weather.since == Position(1, "e")


def test_the_anchor_lies_on_a_topic_of_the_pattern() -> None:
    a, b = Cursor(), Cursor()
    a.accept("x.b.d", 8, "e")  # matches x.b.* only
    a.accept("x.b.c", 6, "e")  # matches both
    b.accept("x.b.c", 6, "e")
    b.accept("x.q.c", 12, "e")  # matches x.*.c only
    point = resume_point("x.*.c", [("x.b.*", a), ("x.*.c", b)])
    # bound = min(8, 12) = 8, but 8 is not on a topic of x.*.c: anchor on 6
    assert point is not None and point.since == Position(6, "e")


def test_a_new_subscription_borrows_the_position_of_overlapping_ones() -> None:
    old = Cursor()
    old.accept("news.sport", 20, "e")
    point = resume_point("news.sport", [("news.*", old), ("news.sport", Cursor())])
    assert point is not None and point.since == Position(20, "e") and not point.own


def test_merged_replays_of_overlapping_patterns_give_each_subscription_everything_once_in_order() -> None:
    """Two in-order streams of one topic from a common start, interleaved any way: each
    subscription gets the complete sequence once, in order (the argument of resume.py)."""
    rng = random.Random(7)
    for _ in range(200):
        start = rng.randint(0, 5)
        offsets = sorted(rng.sample(range(start + 1, 60), 12))
        a, b = list(offsets), list(offsets)
        merged = []
        while a or b:
            source = a if (a and (not b or rng.random() < 0.5)) else b
            merged.append(source.pop(0))
        for cursor in (Cursor(), Cursor()):
            cursor.accept("t", start, "e")
            got = [o for o in merged if cursor.accept("t", o, "e") is Verdict.DELIVER]
            assert got == offsets


def test_pattern_matching_and_overlap() -> None:
    assert matches("a.*", "a.b") and not matches("a.*", "a.b.c") and not matches("a.*", "a")
    assert matches("a.**", "a.b.c") and not matches("a.**", "a")
    assert matches("a.b", "a.b") and not matches("a.b", "a.c")
    assert matches("*.b.**", "x.b.y.z")
    assert intersects("news.*", "news.sport") and intersects("x.b.*", "x.*.c")
    assert not intersects("a.*", "a.b.c") and intersects("a.**", "a.b.c")
    assert not intersects("a.b", "b.a")
