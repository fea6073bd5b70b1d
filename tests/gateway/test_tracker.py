"""This gateway's own presence as pure data: sockets in, what the others are told out."""

from __future__ import annotations

from herald_common.presence import Entry
from herald_gateway.tracker import Tracker

T0 = 1_000.0


def test_a_first_socket_is_announced_and_a_second_changes_the_count() -> None:
    t = Tracker(grace=5.0)
    t.add("room", "alice")
    assert t.pending
    assert t.flush(T0) == [Entry("room", "alice", 1)]
    t.add("room", "alice")
    assert t.flush(T0) == [Entry("room", "alice", 2)]
    assert t.flush(T0) == []
    assert t.local("room", "alice") == 2


def test_the_last_socket_s_leave_waits_for_the_grace() -> None:
    t = Tracker(grace=5.0)
    t.add("room", "alice")
    t.flush(T0)
    t.remove("room", "alice", T0)
    assert t.deadline == T0 + 5.0
    assert t.flush(T0 + 4.9) == []
    assert len(t) == 1  # still announced while in its grace
    assert t.flush(T0 + 5.0) == [Entry("room", "alice", 0)]
    assert len(t) == 0 and t.deadline is None


def test_coming_back_within_the_grace_tells_nobody_anything() -> None:
    t = Tracker(grace=5.0)
    t.add("room", "alice")
    t.flush(T0)
    t.remove("room", "alice", T0)
    t.add("room", "alice")
    assert t.deadline is None
    assert t.flush(T0 + 10) == []
    assert t.state() == [Entry("room", "alice", 1)]


def test_a_socket_that_came_and_went_between_flushes_is_never_announced() -> None:
    t = Tracker(grace=5.0)
    t.add("room", "bob")
    t.remove("room", "bob", T0)
    assert not t.pending and t.deadline is None
    assert t.flush(T0) == []


def test_no_grace_announces_the_leave_at_the_next_flush() -> None:
    t = Tracker(grace=0.0)
    t.add("room", "alice")
    t.flush(T0)
    t.remove("room", "alice", T0)
    assert t.flush(T0) == [Entry("room", "alice", 0)]


def test_a_drop_from_two_to_one_socket_is_told_at_once() -> None:
    t = Tracker(grace=5.0)
    t.add("room", "alice")
    t.add("room", "alice")
    assert t.flush(T0) == [Entry("room", "alice", 2)]
    t.remove("room", "alice", T0)
    assert t.flush(T0) == [Entry("room", "alice", 1)]


def test_state_and_announced_list_what_the_others_know() -> None:
    t = Tracker(grace=5.0)
    t.add("a", "u1")
    t.add("b", "u2")
    t.flush(T0)
    t.add("c", "u3")  # not flushed yet: not part of a snapshot
    assert sorted(t.state(), key=lambda e: e.topic) == [Entry("a", "u1", 1), Entry("b", "u2", 1)]
    assert sorted(t.announced()) == [("a", "u1"), ("b", "u2")]
