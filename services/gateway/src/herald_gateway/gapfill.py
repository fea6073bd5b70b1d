"""Where each live pattern subscription stands, to find the messages it missed (plain bookkeeping).

Core NATS does not redeliver: while the gateway's NATS connection is down, or when the
client library drops messages for a slow subscription, live messages never arrive,
although the TOPICS stream stored them. Every republished message carries its own
stream sequence (``Nats-Sequence``) and that of the previous message on the same
subject (``Nats-Last-Sequence``), so comparing the latter with what this gateway
delivered tells whether something in between is missing.

One :class:`Feed` per pattern subscription (not per subject and pattern pair across the
process: overlapping patterns are separate NATS subscriptions, each of which can lose
messages on its own, and each fans out to different holders). It remembers, for a
bounded number of recently active subjects, the last sequence delivered on it, and a
``floor`` that stands for every subject it does not remember. The shell asks
:meth:`Feed.observe` about each live message and reports what it delivered with
:meth:`Feed.delivered`; it never delivers a sequence at or below :meth:`Feed.known`, so
a message reaches the holders of a pattern at most once, checked once per message and
pattern, not per recipient.

Invariants the shell relies on:

- for a subject with an entry, nothing above the entry was delivered on it;
- for a subject without one, nothing above ``floor`` was delivered on it (an evicted
  entry raises ``floor`` to its value, so forgetting a subject never lets a delivered
  message through again; at worst an older miss on it goes unnoticed);
- ``high`` is the highest sequence delivered, or the stream's last sequence when the
  subscription began: a reconnect catch-up replays the pattern from ``high + 1``.
"""

from __future__ import annotations

import enum
from collections import OrderedDict
from dataclasses import dataclass


class Verdict(enum.Enum):
    #: Next on its subject: deliver it.
    DELIVER = "deliver"
    #: Already delivered (or older than the subscription): drop it.
    DUPLICATE = "duplicate"
    #: Earlier messages on its subject were missed: fetch them, deliver them, then it.
    GAP = "gap"


@dataclass(frozen=True, slots=True)
class Observation:
    verdict: Verdict
    #: With :attr:`Verdict.GAP`: the missing messages are the subject's in ``(after, seq)``.
    after: int = 0


class Feed:
    """Delivery positions of one pattern subscription."""

    __slots__ = ("_last", "epoch", "floor", "generation", "high", "limit")

    def __init__(self, floor: int, limit: int, *, epoch: str = "0", generation: int = 0) -> None:
        if limit < 1:
            raise ValueError("a feed must track at least one subject")
        self.floor = floor
        self.high = floor
        self.limit = limit
        #: The stream epoch the sequences belong to.
        self.epoch = epoch
        #: The NATS connection generation this feed last caught up with (the shell's counter).
        self.generation = generation
        self._last: OrderedDict[str, int] = OrderedDict()

    def __len__(self) -> int:
        return len(self._last)

    def known(self, subject: str) -> int:
        """The last sequence delivered on ``subject`` (or a bound above it)."""
        return self._last.get(subject, self.floor)

    def observe(self, subject: str, seq: int, last_seq: int | None) -> Observation:
        """What to do with a live message; ``last_seq`` is its ``Nats-Last-Sequence`` if any."""
        known = self.known(subject)
        if seq <= known:
            return Observation(Verdict.DUPLICATE)
        # A previous message the header names that lies above what was delivered is a
        # gap; one at or below it (or none: first, or deleted) is the normal case.
        if last_seq is not None and known < last_seq < seq:
            return Observation(Verdict.GAP, after=known)
        return Observation(Verdict.DELIVER)

    def delivered(self, subject: str, seq: int) -> None:
        """Record that ``seq`` on ``subject`` was fanned out (ignored if not newer)."""
        if seq <= self.known(subject):
            return
        self._last[subject] = seq
        self._last.move_to_end(subject)
        if seq > self.high:
            self.high = seq
        while len(self._last) > self.limit:
            _, evicted = self._last.popitem(last=False)
            if evicted > self.floor:
                self.floor = evicted

    def caught_up(self, through: int) -> None:
        """Everything on the pattern up to ``through`` was delivered (a catch-up ended)."""
        if through <= self.floor:
            return
        self.floor = through
        if through > self.high:
            self.high = through
        for subject in [s for s, seq in self._last.items() if seq <= through]:
            del self._last[subject]

    def restart(self, floor: int, epoch: str) -> None:
        """The stream was recreated: forget every position and start again at ``floor``."""
        self._last.clear()
        self.floor = floor
        self.high = floor
        self.epoch = epoch
