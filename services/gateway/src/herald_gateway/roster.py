"""Every gateway's presence, as this gateway knows it, and the joins and leaves it implies (sans-I/O).

Each gateway's batches (:class:`~herald_common.presence.Sync`) are applied in the order
they were numbered. A batch that skips a number, a heartbeat naming a batch never seen,
or a gateway heard of for the first time puts that gateway in ``SYNCING``: the shell
asks it for a snapshot, batches meanwhile are kept, and the snapshot replaces what was
known of it before the kept batches after it are applied. A gateway silent for
``timeout`` seconds is dropped with all its users; one that said goodbye is dropped
``grace`` seconds later, so users who reconnect elsewhere in time never leave.

A user is on a topic while any gateway has them there: the first gateway makes a
:class:`Change` ``JOIN``, the last one gone a ``LEAVE``. Every gateway derives the same
changes from the same batches; ``cause`` says whose batch (or expiry) made each one.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from herald_common.presence import Entry


class Kind(enum.Enum):
    JOIN = "join"
    LEAVE = "leave"


@dataclass(frozen=True, slots=True)
class Change:
    kind: Kind
    topic: str
    user: str
    #: users on the topic with this one: after a join, before a leave
    count: int
    #: the gateway whose batch made it; for a dropped gateway, the gateway that dropped it
    cause: str


class PeerState(enum.Enum):
    SYNCING = "syncing"
    LIVE = "live"
    #: said goodbye: dropped at ``Peer.until``
    LEAVING = "leaving"


_PEER_TRANSITIONS: dict[PeerState, frozenset[PeerState]] = {
    PeerState.SYNCING: frozenset({PeerState.LIVE, PeerState.LEAVING}),
    PeerState.LIVE: frozenset({PeerState.SYNCING, PeerState.LEAVING}),
    PeerState.LEAVING: frozenset(),
}


class IllegalPeerTransitionError(RuntimeError):
    """A peer state change the sync protocol does not allow."""


@dataclass
class Peer:
    state: PeerState
    heard: float
    #: number of the last batch applied
    seq: int = 0
    until: float = 0.0
    #: batches that arrived while syncing, by number
    kept: dict[int, list[Entry]] = field(default_factory=dict)
    #: (topic, user) -> connections there
    entries: dict[tuple[str, str], int] = field(default_factory=dict)

    def move(self, new: PeerState) -> None:
        if new not in _PEER_TRANSITIONS[self.state]:
            raise IllegalPeerTransitionError(f"{self.state.value} -> {new.value}")
        self.state = new


#: At most this many batches are kept per syncing gateway; beyond, the snapshot decides.
MAX_KEPT = 1000


class Roster:
    def __init__(self, own: str, timeout: float, grace: float) -> None:
        self.own = own
        self._timeout = timeout
        self._grace = grace
        #: topic -> user -> gateway -> connections
        self._topics: dict[str, dict[str, dict[str, int]]] = {}
        self._peers: dict[str, Peer] = {}
        self._own_entries: dict[tuple[str, str], int] = {}

    # reading

    def count(self, topic: str) -> int:
        return len(self._topics.get(topic, ()))

    def users(self, topic: str) -> list[tuple[str, int]]:
        """(user, connections over every gateway), sorted by user."""
        users = self._topics.get(topic, {})
        return sorted((user, sum(where.values())) for user, where in users.items())

    @property
    def members(self) -> int:
        """(topic, user, gateway) entries held: this copy's size."""
        return sum(len(where) for users in self._topics.values() for where in users.values())

    @property
    def peers(self) -> dict[str, PeerState]:
        return {gw: peer.state for gw, peer in self._peers.items()}

    def syncing(self) -> list[str]:
        return [gw for gw, peer in self._peers.items() if peer.state is PeerState.SYNCING]

    @property
    def leader(self) -> bool:
        """This gateway has the smallest id of the live ones: it stores the leaves of dropped gateways."""
        return all(self.own < gw for gw, peer in self._peers.items() if peer.state is not PeerState.LEAVING)

    # this gateway

    def apply_own(self, entries: list[Entry]) -> list[Change]:
        changes: list[Change] = []
        for entry in entries:
            self._set(self.own, self._own_entries, entry, changes, self.own)
        return changes

    # other gateways

    def on_sync(self, gateway: str, seq: int, entries: list[Entry], now: float) -> tuple[list[Change], bool]:
        """A batch from ``gateway``; returns the changes and whether to ask it for a snapshot."""
        if gateway == self.own:
            return [], False
        peer = self._peers.get(gateway)
        if peer is None:
            peer = self._peers[gateway] = Peer(PeerState.SYNCING, now)
            peer.kept[seq] = entries
            return [], True
        if peer.state is PeerState.LEAVING:
            return [], False  # it said goodbye; nothing it sent before is lost (one connection keeps order)
        peer.heard = now
        if peer.state is PeerState.SYNCING:
            if len(peer.kept) < MAX_KEPT:
                peer.kept[seq] = entries
            return [], False
        if seq <= peer.seq:
            return [], False  # seen already
        if seq != peer.seq + 1:
            peer.move(PeerState.SYNCING)
            peer.kept = {seq: entries}
            return [], True
        peer.seq = seq
        changes: list[Change] = []
        for entry in entries:
            self._set(gateway, peer.entries, entry, changes, gateway)
        return changes, False

    def on_beat(self, gateway: str, seq: int, now: float) -> bool:
        """A heartbeat; True when ``gateway`` must be asked for a snapshot."""
        if gateway == self.own:
            return False
        peer = self._peers.get(gateway)
        if peer is None:
            self._peers[gateway] = Peer(PeerState.SYNCING, now)
            return True
        peer.heard = now
        if peer.state is PeerState.LIVE and seq > peer.seq:
            peer.move(PeerState.SYNCING)
            peer.kept = {}
            return True
        return peer.state is PeerState.SYNCING

    def on_snapshot(self, gateway: str, seq: int, entries: list[Entry], now: float) -> list[Change]:
        """``gateway``'s whole state as of batch ``seq``: replaces what was known of it."""
        peer = self._peers.get(gateway)
        if gateway == self.own or peer is None or peer.state is not PeerState.SYNCING:
            return []
        peer.heard = now
        changes: list[Change] = []
        fresh = {(e.topic, e.user): e.connections for e in entries if e.connections > 0}
        for key in [k for k in peer.entries if k not in fresh]:
            self._set(gateway, peer.entries, Entry(key[0], key[1], 0), changes, gateway)
        for (topic, user), connections in fresh.items():
            self._set(gateway, peer.entries, Entry(topic, user, connections), changes, gateway)
        peer.seq = seq
        kept, peer.kept = peer.kept, {}
        peer.move(PeerState.LIVE)
        for number in sorted(k for k in kept if k > seq):
            more, resync = self.on_sync(gateway, number, kept[number], now)
            changes += more
            if resync:
                break
        return changes

    def on_bye(self, gateway: str, now: float) -> None:
        peer = self._peers.get(gateway)
        if gateway == self.own or peer is None or peer.state is PeerState.LEAVING:
            return
        peer.move(PeerState.LEAVING)
        peer.until = now + self._grace

    def expire(self, now: float) -> tuple[list[Change], list[str]]:
        """Drop the gateways silent for ``timeout`` seconds and those whose goodbye is due."""
        gone = [
            gw
            for gw, peer in self._peers.items()
            if (peer.until <= now if peer.state is PeerState.LEAVING else peer.heard + self._timeout <= now)
        ]
        changes: list[Change] = []
        for gw in gone:
            peer = self._peers.pop(gw)
            for topic, user in list(peer.entries):
                self._set(gw, peer.entries, Entry(topic, user, 0), changes, self.own)
        return changes, gone

    # internals

    def _set(
        self, gateway: str, mine: dict[tuple[str, str], int], entry: Entry, changes: list[Change], cause: str
    ) -> None:
        key = (entry.topic, entry.user)
        users = self._topics.get(entry.topic)
        if entry.connections <= 0:
            if mine.pop(key, None) is None or users is None:
                return
            where = users.get(entry.user)
            if where is None or where.pop(gateway, None) is None or where:
                return
            count = len(users)
            del users[entry.user]
            if not users:
                del self._topics[entry.topic]
            changes.append(Change(Kind.LEAVE, entry.topic, entry.user, count, cause))
            return
        mine[key] = entry.connections
        if users is None:
            users = self._topics[entry.topic] = {}
        where = users.get(entry.user)
        if where is None:
            users[entry.user] = {gateway: entry.connections}
            changes.append(Change(Kind.JOIN, entry.topic, entry.user, len(users), cause))
        else:
            where[gateway] = entry.connections
