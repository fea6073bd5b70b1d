"""Gap detection state of one live pattern subscription (pure)."""

from __future__ import annotations

import pytest

from herald_gateway.gapfill import Feed, Observation, Verdict

DELIVER = Observation(Verdict.DELIVER)
DUPLICATE = Observation(Verdict.DUPLICATE)


def deliver(feed: Feed, subject: str, seq: int, last_seq: int | None) -> Observation:
    seen = feed.observe(subject, seq, last_seq)
    if seen.verdict is not Verdict.DUPLICATE:
        feed.delivered(subject, seq)
    return seen


def test_in_order_messages_are_delivered() -> None:
    feed = Feed(floor=10, limit=100)
    assert deliver(feed, "live.a", 11, 3) == DELIVER  # previous one predates the subscription
    assert deliver(feed, "live.b", 12, 0) == DELIVER  # first on its subject
    assert deliver(feed, "live.a", 13, 11) == DELIVER
    assert deliver(feed, "live.b", 14, None) == DELIVER  # no header: nothing to compare
    assert feed.known("live.a") == 13
    assert feed.known("live.b") == 14
    assert feed.high == 14


def test_a_missed_previous_message_is_a_gap_after_the_last_delivered() -> None:
    feed = Feed(floor=10, limit=100)
    deliver(feed, "live.a", 11, 0)
    deliver(feed, "live.b", 12, 0)
    # 13 and 15 were on live.a and never arrived.
    assert feed.observe("live.a", 16, 15) == Observation(Verdict.GAP, after=11)
    # Another subject is not affected.
    assert feed.observe("live.b", 17, 12) == DELIVER


def test_a_gap_on_a_subject_first_seen_starts_at_the_floor() -> None:
    feed = Feed(floor=10, limit=100)
    assert feed.observe("live.c", 20, 15) == Observation(Verdict.GAP, after=10)


def test_duplicates_are_dropped_once_delivered() -> None:
    feed = Feed(floor=10, limit=100)
    deliver(feed, "live.a", 11, 0)
    deliver(feed, "live.a", 12, 11)
    assert feed.observe("live.a", 12, 11) == DUPLICATE
    assert feed.observe("live.a", 11, 0) == DUPLICATE
    assert feed.observe("live.z", 9, 0) == DUPLICATE  # before the subscription began
    # A fill delivered 13 and 14 before the live copies came in.
    feed.delivered("live.a", 13)
    feed.delivered("live.a", 14)
    assert feed.observe("live.a", 13, 12) == DUPLICATE
    assert feed.observe("live.a", 14, 13) == DUPLICATE
    assert feed.observe("live.a", 15, 14) == DELIVER


def test_delivered_never_moves_backwards() -> None:
    feed = Feed(floor=0, limit=100)
    feed.delivered("live.a", 5)
    feed.delivered("live.a", 3)
    assert feed.known("live.a") == 5


def test_eviction_forgets_the_least_recent_subject_without_allowing_a_repeat() -> None:
    feed = Feed(floor=0, limit=2)
    deliver(feed, "live.a", 1, 0)
    deliver(feed, "live.b", 2, 0)
    deliver(feed, "live.a", 3, 1)  # a is now the most recent
    deliver(feed, "live.c", 4, 0)  # evicts b (last 2)
    assert len(feed) == 2
    assert feed.floor == 2
    # b's delivered message must not come through again ...
    assert feed.observe("live.b", 2, 0) == DUPLICATE
    # ... a later one is new, and a gap on b is filled from above what it had.
    assert feed.observe("live.b", 5, 2) == DELIVER
    assert feed.observe("live.b", 6, 5) == Observation(Verdict.GAP, after=2)
    assert feed.known("live.a") == 3
    assert feed.known("live.c") == 4


def test_catching_up_moves_everything_to_the_replayed_end() -> None:
    feed = Feed(floor=10, limit=100)
    deliver(feed, "live.a", 11, 0)
    feed.caught_up(20)
    assert (feed.floor, feed.high, len(feed)) == (20, 20, 0)
    assert feed.observe("live.a", 15, 11) == DUPLICATE  # arrived live after the replay
    assert feed.observe("live.a", 21, 15) == DELIVER
    feed.caught_up(5)  # an older end changes nothing
    assert (feed.floor, feed.high) == (20, 20)


def test_restart_forgets_positions_of_a_recreated_stream() -> None:
    feed = Feed(floor=100, limit=10, epoch="1")
    deliver(feed, "live.a", 101, 0)
    feed.restart(3, "2")
    assert (feed.floor, feed.high, feed.epoch, len(feed)) == (3, 3, "2", 0)
    assert feed.observe("live.a", 4, 0) == DELIVER


def test_a_feed_tracks_at_least_one_subject() -> None:
    with pytest.raises(ValueError, match="at least one subject"):
        Feed(floor=0, limit=0)
