"""The client's subscriptions as the protocol sees them, and where each frame goes.

A ``message`` frame names its topic, not the pattern it came through; :meth:`Table.route`
hands it to every subscription whose pattern matches, each dropping its own duplicates
(:mod:`herald_client.resume`). :meth:`Table.resume_point` picks the ``since`` of a
subscribe, taking overlapping subscriptions into account.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from herald_client import frames
from herald_client.messages import Gap, GapReason, Message, PresenceEvent, PresenceKind
from herald_client.outputs import Deliver, Ended, GapFound, Output, Presence
from herald_client.resume import Cursor, ResumePoint, Verdict, resume_point
from herald_client.states import SUBSCRIPTION_TRANSITIONS, StateMachine, SubscriptionState
from herald_client.topics import intersects, matches


@dataclass
class Entry:
    """One subscription's protocol state."""

    pattern: str
    presence: bool
    machine: StateMachine[SubscriptionState] = field(
        default_factory=lambda: StateMachine(SubscriptionState.UNSUBSCRIBED, SUBSCRIPTION_TRANSITIONS)
    )
    cursor: Cursor = field(default_factory=Cursor)
    #: The app's ``subscribe`` call waiting for the first ``subscribed``.
    waiter: int | None = None
    #: The last ``subscribed`` on a resume answered this (None: never resumed).
    recovered: bool | None = None
    #: Users present on the topic (with ``presence``), as join/leave frames told.
    members: set[str] = field(default_factory=set)
    #: When to send the subscribe again after a retryable error (monotonic seconds).
    retry_at: float | None = None
    #: The subscribe in flight resumes from a position of its own.
    resuming_own: ResumePoint | None = None

    @property
    def state(self) -> SubscriptionState:
        return self.machine.state


class Table:
    """Entries by pattern (one per pattern), plus what the current connection resumed."""

    def __init__(self) -> None:
        self._entries: dict[str, Entry] = {}
        #: Patterns subscribed with ``since`` on this connection (their replays may still run).
        self._resumed: set[str] = set()

    def __contains__(self, pattern: object) -> bool:
        return pattern in self._entries

    def __iter__(self) -> Iterator[Entry]:
        return iter(list(self._entries.values()))

    def __len__(self) -> int:
        return len(self._entries)

    def __getitem__(self, pattern: str) -> Entry:
        return self._entries[pattern]

    def get(self, pattern: str) -> Entry | None:
        return self._entries.get(pattern)

    def add(self, entry: Entry) -> None:
        self._entries[entry.pattern] = entry

    def end(self, pattern: str, error: Exception | None) -> list[Output]:
        """Drop the subscription on ``pattern``; its iteration ends (with ``error``, if any)."""
        entry = self._entries.pop(pattern, None)
        if entry is None:
            return []
        if entry.state is not SubscriptionState.UNSUBSCRIBED:
            entry.machine.to(SubscriptionState.UNSUBSCRIBED)
        return [Ended(pattern, error)]

    def connection_lost(self) -> None:
        self._resumed.clear()
        for entry in self._entries.values():
            entry.retry_at = None
            entry.resuming_own = None
            if entry.state is SubscriptionState.SUBSCRIBED:
                entry.machine.to(SubscriptionState.SUBSCRIBING)

    def resume_point(self, entry: Entry, *, reconnect: bool) -> ResumePoint | None:
        """The ``since`` for a subscribe of ``entry`` now (None: subscribe from now on).

        On a (re)connect every subscription resumes from its group's position. A fresh
        subscribe on a live connection borrows a position only if it overlaps one that
        resumed on this connection, whose replay may still run.
        """
        point: ResumePoint | None = None
        if reconnect or any(intersects(entry.pattern, p) for p in self._resumed):
            point = resume_point(entry.pattern, ((p, e.cursor) for p, e in self._entries.items()))
        entry.resuming_own = point if point is not None and point.own else None
        if point is not None:
            self._resumed.add(entry.pattern)
        return point

    def route(self, frame: frames.MessageFrame) -> list[Output]:
        """Hand a message to every subscription whose pattern matches, unless it is a duplicate there."""
        out: list[Output] = []
        message: Message | None = None
        for pattern, entry in self._entries.items():
            if not matches(pattern, frame.topic):
                continue
            before = entry.cursor.position
            verdict = entry.cursor.accept(frame.topic, frame.offset, frame.epoch)
            if verdict is Verdict.DUPLICATE:
                continue
            if verdict is Verdict.DELIVER_NEW_EPOCH and before is not None:
                out.append(GapFound(Gap(pattern, GapReason.EPOCH_CHANGED, before.offset, before.epoch)))
            if message is None:
                message = Message(frame.topic, frame.data, frame.offset, frame.epoch, frame.event, frame.publisher)
            out.append(Deliver(pattern, message))
        return out

    def subscribed(self, entry: Entry, recovered: bool | None) -> list[Output]:
        """The gateway answered ``subscribed`` for ``entry``; a resume it could not complete is a gap."""
        out: list[Output] = []
        if entry.state is SubscriptionState.SUBSCRIBING:
            entry.machine.to(SubscriptionState.SUBSCRIBED)
        point, entry.resuming_own = entry.resuming_own, None
        if point is not None and recovered is not None:
            entry.recovered = recovered
            if not recovered:
                out.append(GapFound(Gap(entry.pattern, GapReason.NOT_RECOVERED, point.since.offset, point.since.epoch)))
        return out

    def presence(self, frame: frames.Join | frames.Leave) -> list[Output]:
        entry = self._entries.get(frame.topic)
        if entry is None or not entry.presence:
            return []
        if isinstance(frame, frames.Join):
            entry.members.add(frame.user_id)
            kind = PresenceKind.JOIN
        else:
            entry.members.discard(frame.user_id)
            kind = PresenceKind.LEAVE
        return [Presence(frame.topic, PresenceEvent(kind, frame.topic, frame.user_id))]
