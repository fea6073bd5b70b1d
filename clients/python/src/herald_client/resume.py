"""Resume bookkeeping: what each subscription has handed to the app, and where to resume.

One message frame can belong to several subscriptions (``news.*`` and ``news.sport``):
the gateway sends it once per socket and the client routes it to every subscription
whose pattern matches its topic. Each subscription has its own :class:`Cursor`: a
high-water offset per topic (offsets increase per topic) within one epoch. A frame at
or below a topic's mark is a duplicate for that subscription and is dropped.

That is exact only if every stream of frames reaching a subscription on a topic is
complete and in order from where that subscription stands. During a recovery the
gateway replays each pattern from its own ``since``; replays of overlapping patterns
on the same topic are each complete and in order, so any interleaving of them, minus
duplicates, is the complete sequence, provided none starts *after* a position some
overlapping subscription still needs. :func:`resume_point` therefore resumes a pattern
from the smallest position among the subscriptions it overlaps, anchored on an offset
known to lie on a topic of the pattern (the gateway only answers ``recovered: true``
when the message at ``since`` matches the pattern).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field

from herald_client.topics import intersects, matches


class Verdict(enum.Enum):
    DELIVER = "deliver"
    #: Deliver, but the epoch changed: the history before it is lost (a gap).
    DELIVER_NEW_EPOCH = "deliver_new_epoch"
    DUPLICATE = "duplicate"


@dataclass(frozen=True, slots=True)
class Position:
    offset: int
    epoch: str


@dataclass
class Cursor:
    """What one subscription has handed to the app."""

    epoch: str | None = None
    #: Offset of the last message handed to the app (the ``since`` to resume from).
    last: int | None = None
    marks: dict[str, int] = field(default_factory=dict)

    @property
    def position(self) -> Position | None:
        if self.last is None or self.epoch is None:
            return None
        return Position(self.last, self.epoch)

    def accept(self, topic: str, offset: int, epoch: str) -> Verdict:
        """Record a message if it is new for this subscription; say whether to hand it over."""
        verdict = Verdict.DELIVER
        if epoch != self.epoch:
            if self.epoch is not None:
                verdict = Verdict.DELIVER_NEW_EPOCH
            self.epoch = epoch
            self.marks.clear()
        elif offset <= self.marks.get(topic, -1):
            return Verdict.DUPLICATE
        self.marks[topic] = offset
        self.last = offset
        return verdict


@dataclass(frozen=True, slots=True)
class ResumePoint:
    since: Position
    #: True when the subscription resumes from a position of its own (so ``recovered:
    #: false`` means it may have missed messages); False when it borrowed the position of
    #: overlapping subscriptions (a new subscription made while they resume).
    own: bool


def resume_point(pattern: str, cursors: Iterable[tuple[str, Cursor]]) -> ResumePoint | None:
    """Where ``pattern`` resumes, given the cursors of every subscription (its own among them).

    None when neither it nor any overlapping subscription has handed a message yet.
    """
    own: Cursor | None = None
    group: list[Cursor] = []
    for other, cursor in cursors:
        if other == pattern:
            own = cursor
            if cursor.position is not None:
                group.append(cursor)
        elif intersects(pattern, other) and cursor.position is not None:
            group.append(cursor)
    if not group:
        return None
    own_position = own.position if own is not None else None
    epoch = own_position.epoch if own_position is not None else group[0].epoch
    same = [c for c in group if c.epoch == epoch]
    bound = min(c.last for c in same if c.last is not None)
    anchors = [m for c in same for topic, m in c.marks.items() if m <= bound and matches(pattern, topic)]
    offset = max(anchors) if anchors else bound
    assert epoch is not None
    return ResumePoint(Position(offset, epoch), own=own_position is not None)
