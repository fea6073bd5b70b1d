from __future__ import annotations

from herald_bridge.lag import lag_of


def test_nothing_waiting() -> None:
    assert lag_of(last_seq=10, first_seq=1, checkpoint=10) == (0, 0)
    assert lag_of(last_seq=0, first_seq=0, checkpoint=0) == (0, 0)


def test_events_after_the_checkpoint_wait() -> None:
    assert lag_of(last_seq=10, first_seq=1, checkpoint=7) == (3, 8)
    assert lag_of(last_seq=10, first_seq=1, checkpoint=0) == (10, 1)


def test_expired_events_do_not_count() -> None:
    assert lag_of(last_seq=10, first_seq=6, checkpoint=2) == (5, 6)


def test_a_recreated_stream_counts_from_its_start() -> None:
    assert lag_of(last_seq=4, first_seq=1, checkpoint=50) == (4, 1)
