"""The recovering state of a subscription, and when ``recovered: true`` is sound."""

from __future__ import annotations

import pytest

from herald_gateway.recovery import IllegalRecoveryStepError, Recovery, RecoveryState, gap_is_covered


def test_parked_messages_after_the_replay_are_delivered_once_in_order() -> None:
    recovery = Recovery(limit=10)
    for offset in (7, 8, 9, 10, 11):
        assert recovery.park(offset, f"m{offset}".encode())
    # The replay went through sequence 9: 7..9 were replayed, so only 10 and 11 remain.
    assert recovery.finish(9) == [b"m10", b"m11"]
    assert recovery.state is RecoveryState.LIVE
    assert len(recovery) == 0


def test_nothing_parked_nothing_delivered() -> None:
    assert Recovery(limit=1).finish(0) == []


def test_overflow_fails_the_recovery() -> None:
    recovery = Recovery(limit=2)
    assert recovery.park(1, b"a")
    assert recovery.park(2, b"b")
    assert not recovery.park(3, b"c")
    assert recovery.state is RecoveryState.OVERFLOWED
    assert len(recovery) == 0
    with pytest.raises(IllegalRecoveryStepError):
        recovery.finish(0)
    with pytest.raises(IllegalRecoveryStepError):
        recovery.park(4, b"d")


def test_no_parking_once_live() -> None:
    recovery = Recovery(limit=2)
    recovery.finish(0)
    with pytest.raises(IllegalRecoveryStepError):
        recovery.park(1, b"a")
    with pytest.raises(IllegalRecoveryStepError):
        recovery.finish(0)


def covered(**overrides: object) -> bool:
    facts: dict[str, object] = {
        "offset": 4,
        "first_seq": 1,
        "last_seq": 10,
        "anchor_matches": True,
        "oldest_by_subject": {"topics.a": 1, "topics.b": 2},
        "replayed_subjects": ["topics.a", "topics.b"],
    }
    facts.update(overrides)
    return gap_is_covered(**facts)  # type: ignore[arg-type]


def test_covered_when_the_anchor_and_every_subject_reach_back() -> None:
    assert covered()
    assert covered(replayed_subjects=[])


def test_not_covered_when_the_anchor_is_gone_or_foreign() -> None:
    assert not covered(anchor_matches=False)


def test_not_covered_when_a_subject_was_trimmed_past_the_offset() -> None:
    assert not covered(oldest_by_subject={"topics.a": 1, "topics.b": 5})
    assert not covered(oldest_by_subject={"topics.a": 1})


def test_not_covered_for_an_offset_the_stream_never_gave() -> None:
    assert not covered(offset=11)


def test_from_the_beginning_only_if_nothing_was_ever_discarded() -> None:
    assert covered(offset=0, anchor_matches=False, first_seq=1)
    assert covered(offset=0, anchor_matches=False, first_seq=0, last_seq=0)
    assert not covered(offset=0, anchor_matches=False, first_seq=2)
