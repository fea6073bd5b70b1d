"""This gateway's own presence: per topic and user, how many local sockets are subscribed (sans-I/O).

A socket counts on a topic when it holds a subscription to exactly that topic (patterns
never count). The counts change at once; what the other gateways are told
(:meth:`Tracker.flush`) changes with them, except that a count falling to 0 is held back
for the grace period: a socket of the same user subscribing again meanwhile cancels it,
and nobody hears anything (a page reload does not flicker).
"""

from __future__ import annotations

from herald_common.presence import Entry

Key = tuple[str, str]


class Tracker:
    def __init__(self, grace: float) -> None:
        self._grace = grace
        #: (topic, user) -> local sockets subscribed now
        self._counts: dict[Key, int] = {}
        #: (topic, user) -> the count the other gateways were last told (never 0)
        self._announced: dict[Key, int] = {}
        #: (topic, user) -> when its held-back leave is announced
        self._leaving: dict[Key, float] = {}
        self._dirty: set[Key] = set()

    def __len__(self) -> int:
        """(topic, user) pairs announced as present, leaves in their grace included."""
        return len(self._announced)

    def add(self, topic: str, user: str) -> None:
        key = (topic, user)
        self._counts[key] = self._counts.get(key, 0) + 1
        self._leaving.pop(key, None)
        self._dirty.add(key)

    def remove(self, topic: str, user: str, now: float) -> None:
        """One socket of ``user`` no longer holds ``topic`` (a call without its :meth:`add` raises)."""
        key = (topic, user)
        count = self._counts[key] - 1
        if count:
            self._counts[key] = count
            self._dirty.add(key)
            return
        del self._counts[key]
        if key in self._announced:
            self._leaving[key] = now + self._grace
            if self._grace <= 0:
                self._dirty.add(key)
        else:
            self._dirty.discard(key)  # added and removed between two flushes: nobody heard of it

    def local(self, topic: str, user: str) -> int:
        return self._counts.get((topic, user), 0)

    @property
    def pending(self) -> bool:
        """Changes wait for :meth:`flush` (not counting leaves still in their grace)."""
        return bool(self._dirty)

    @property
    def deadline(self) -> float | None:
        """When the next held-back leave is due, or None."""
        return min(self._leaving.values(), default=None)

    def flush(self, now: float) -> list[Entry]:
        """What the other gateways must be told now: changed counts, and leaves whose grace ended."""
        for key, due in list(self._leaving.items()):
            if due <= now:
                del self._leaving[key]
                self._dirty.add(key)
        out: list[Entry] = []
        for key in self._dirty:
            if key in self._leaving:
                continue
            count = self._counts.get(key, 0)
            told = self._announced.get(key, 0)
            if count == told:
                continue
            if count:
                self._announced[key] = count
            else:
                del self._announced[key]
            out.append(Entry(key[0], key[1], count))
        self._dirty.clear()
        return out

    def state(self) -> list[Entry]:
        """Everything announced so far (what a snapshot holds)."""
        return [Entry(topic, user, count) for (topic, user), count in self._announced.items()]

    def announced(self) -> list[Key]:
        """The pairs the others know of, e.g. to announce them all as gone."""
        return list(self._announced)
