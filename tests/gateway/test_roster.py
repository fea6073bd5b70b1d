"""Every gateway's presence as pure data: batches, heartbeats, snapshots and silence in, joins and leaves out."""

from __future__ import annotations

import pytest

from herald_common.presence import Entry
from herald_gateway.roster import Change, IllegalPeerTransitionError, Kind, Peer, PeerState, Roster

T0 = 1_000.0


def live(roster: Roster, gateway: str, seq: int = 0, entries: list[Entry] | None = None) -> list[Change]:
    """Make ``gateway`` known and synced (heartbeat, then its snapshot)."""
    assert roster.on_beat(gateway, seq, T0)
    return roster.on_snapshot(gateway, seq, entries or [], T0)


def kinds(changes: list[Change]) -> list[tuple[str, str, str]]:
    return [(c.kind.value, c.topic, c.user) for c in changes]


def test_own_entries_join_and_leave() -> None:
    r = Roster("g1", timeout=15, grace=5)
    assert r.apply_own([Entry("room", "alice", 1)]) == [Change(Kind.JOIN, "room", "alice", 1, "g1")]
    assert r.apply_own([Entry("room", "alice", 2)]) == []
    assert r.users("room") == [("alice", 2)]
    assert r.apply_own([Entry("room", "alice", 0)]) == [Change(Kind.LEAVE, "room", "alice", 1, "g1")]
    assert r.count("room") == 0 and r.members == 0


def test_a_user_on_two_gateways_joins_once_and_leaves_with_the_last() -> None:
    r = Roster("g1", timeout=15, grace=5)
    live(r, "g2")
    assert kinds(r.apply_own([Entry("room", "bob", 1)])) == [("join", "room", "bob")]
    changes, resync = r.on_sync("g2", 1, [Entry("room", "bob", 1)], T0)
    assert changes == [] and not resync
    assert r.users("room") == [("bob", 2)]
    assert r.apply_own([Entry("room", "bob", 0)]) == []
    changes, _ = r.on_sync("g2", 2, [Entry("room", "bob", 0)], T0)
    assert changes == [Change(Kind.LEAVE, "room", "bob", 1, "g2")]


def test_an_unknown_gateway_is_synced_from_its_snapshot_then_its_kept_batches() -> None:
    r = Roster("g1", timeout=15, grace=5)
    changes, resync = r.on_sync("g2", 4, [Entry("room", "carol", 1)], T0)
    assert changes == [] and resync
    assert r.peers == {"g2": PeerState.SYNCING}
    # The snapshot is as of batch 3; batch 4 (kept) comes after it.
    changes = r.on_snapshot("g2", 3, [Entry("room", "dave", 1)], T0)
    assert kinds(changes) == [("join", "room", "dave"), ("join", "room", "carol")]
    assert r.peers == {"g2": PeerState.LIVE}


def test_a_kept_batch_older_than_the_snapshot_is_not_applied_again() -> None:
    r = Roster("g1", timeout=15, grace=5)
    r.on_sync("g2", 3, [Entry("room", "erin", 1)], T0)
    changes = r.on_snapshot("g2", 3, [Entry("room", "erin", 1)], T0)
    assert kinds(changes) == [("join", "room", "erin")]
    assert r.users("room") == [("erin", 1)]


def test_a_missed_batch_asks_for_a_snapshot_which_replaces_what_was_known() -> None:
    r = Roster("g1", timeout=15, grace=5)
    live(r, "g2", 0, [])
    r.on_sync("g2", 1, [Entry("room", "a", 1), Entry("room", "b", 1)], T0)
    changes, resync = r.on_sync("g2", 3, [Entry("room", "c", 1)], T0)
    assert changes == [] and resync
    # Batch 2 (lost) removed "a"; the snapshot as of 3 shows it.
    changes = r.on_snapshot("g2", 3, [Entry("room", "b", 1), Entry("room", "c", 1)], T0)
    assert kinds(changes) == [("leave", "room", "a"), ("join", "room", "c")]


def test_a_heartbeat_ahead_of_the_last_batch_asks_for_a_snapshot() -> None:
    r = Roster("g1", timeout=15, grace=5)
    live(r, "g2", 5)
    assert not r.on_beat("g2", 5, T0 + 1)
    assert r.on_beat("g2", 6, T0 + 2)
    assert r.syncing() == ["g2"]


def test_a_repeated_batch_is_ignored() -> None:
    r = Roster("g1", timeout=15, grace=5)
    live(r, "g2")
    r.on_sync("g2", 1, [Entry("room", "a", 1)], T0)
    assert r.on_sync("g2", 1, [Entry("room", "a", 0)], T0) == ([], False)
    assert r.users("room") == [("a", 1)]


def test_a_silent_gateway_is_dropped_after_the_timeout_with_all_its_users() -> None:
    r = Roster("g1", timeout=15, grace=5)
    live(r, "g2", 0, [Entry("room", "a", 1), Entry("hall", "b", 2)])
    r.apply_own([Entry("room", "b", 1)])
    assert r.expire(T0 + 14.9) == ([], [])
    changes, gone = r.expire(T0 + 15)
    assert gone == ["g2"]
    assert sorted(kinds(changes)) == [("leave", "hall", "b"), ("leave", "room", "a")]
    assert all(c.cause == "g1" for c in changes)
    assert r.users("room") == [("b", 1)] and r.peers == {}


def test_every_message_from_a_gateway_keeps_it_alive() -> None:
    r = Roster("g1", timeout=15, grace=5)
    live(r, "g2")
    r.on_sync("g2", 1, [], T0 + 10)
    assert r.expire(T0 + 20)[1] == []
    r.on_beat("g2", 1, T0 + 24)
    assert r.expire(T0 + 38)[1] == []
    assert r.expire(T0 + 39)[1] == ["g2"]


def test_a_goodbye_drops_the_gateway_after_the_grace_unless_users_came_back_elsewhere() -> None:
    r = Roster("g1", timeout=15, grace=5)
    live(r, "g2", 0, [Entry("room", "a", 1), Entry("room", "b", 1)])
    r.on_bye("g2", T0)
    assert r.peers == {"g2": PeerState.LEAVING}
    assert r.on_sync("g2", 1, [Entry("room", "c", 1)], T0) == ([], False)  # nothing after goodbye
    # "a" reconnected to this gateway within the grace.
    assert r.apply_own([Entry("room", "a", 1)]) == []
    assert r.expire(T0 + 4.9) == ([], [])
    changes, gone = r.expire(T0 + 5)
    assert gone == ["g2"] and kinds(changes) == [("leave", "room", "b")]


def leads(roster: Roster) -> bool:
    # A call, so that mypy does not narrow ``roster.leader`` across inputs.
    return roster.leader


def test_the_leader_is_the_live_gateway_with_the_smallest_id() -> None:
    r = Roster("g2", timeout=15, grace=5)
    assert leads(r)
    live(r, "g3")
    assert leads(r)
    live(r, "g1")
    assert not leads(r)
    r.on_bye("g1", T0)
    assert leads(r)  # a gateway saying goodbye does not store for the others


def test_counts_say_how_many_users_a_change_concerns() -> None:
    r = Roster("g1", timeout=15, grace=5)
    changes = r.apply_own([Entry("room", f"u{i}", 1) for i in range(3)])
    assert [c.count for c in changes] == [1, 2, 3]
    changes = r.apply_own([Entry("room", f"u{i}", 0) for i in range(3)])
    assert [c.count for c in changes] == [3, 2, 1]


def test_own_messages_coming_back_are_ignored() -> None:
    r = Roster("g1", timeout=15, grace=5)
    assert r.on_sync("g1", 1, [Entry("room", "a", 1)], T0) == ([], False)
    assert not r.on_beat("g1", 1, T0)
    assert r.peers == {}


def test_peer_states_move_only_as_the_protocol_allows() -> None:
    peer = Peer(PeerState.LIVE, T0)
    peer.move(PeerState.LEAVING)
    with pytest.raises(IllegalPeerTransitionError):
        peer.move(PeerState.LIVE)
