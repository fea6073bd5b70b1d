"""The patterns one connection holds, and exactly-once delivery across overlaps.

A connection holding overlapping patterns (``a.*`` and ``a.b``) receives a message on
``a.b`` once per pattern from NATS. Rather than remembering offsets (the NATS client
runs one task per subscription, so messages of different patterns can reach the
gateway out of stream order, and an offset high-water mark would then drop a message
that was never delivered), each message is delivered through one canonical pattern:
the smallest, in string order, of the connection's patterns that match its topic. That
is exact, needs no state per message, and costs nothing for patterns that overlap
no other pattern of the connection.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator

from herald_common.topics import MULTI, SINGLE, matches


class Grant(enum.Enum):
    """Why a subscription was allowed; membership grants can be revoked by events."""

    TOKEN = "token"
    MEMBERSHIP = "membership"


def intersects(a: str, b: str) -> bool:
    """True when some topic is matched by both (validated) patterns."""
    atoks = a.split(".")
    btoks = b.split(".")
    for i, (x, y) in enumerate(zip(atoks, btoks, strict=False)):
        if x == MULTI:
            return len(btoks) > i
        if y == MULTI:
            return len(atoks) > i
        if x != y and SINGLE not in (x, y):
            return False
    return len(atoks) == len(btoks)


class SubscriptionSet:
    """Patterns held by one connection, each with its :class:`Grant`."""

    __slots__ = ("_grants", "_partners")

    def __init__(self) -> None:
        self._grants: dict[str, Grant] = {}
        # pattern -> the connection's other patterns that can match a common topic
        self._partners: dict[str, set[str]] = {}

    def __contains__(self, pattern: object) -> bool:
        return pattern in self._grants

    def __len__(self) -> int:
        return len(self._grants)

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._grants))

    def grant(self, pattern: str) -> Grant | None:
        return self._grants.get(pattern)

    def add(self, pattern: str, grant: Grant) -> bool:
        """Hold ``pattern``; False (and nothing changes) if it was already held."""
        if pattern in self._grants:
            return False
        for other in self._grants:
            if intersects(pattern, other):
                self._partners.setdefault(pattern, set()).add(other)
                self._partners.setdefault(other, set()).add(pattern)
        self._grants[pattern] = grant
        return True

    def remove(self, pattern: str) -> bool:
        """Stop holding ``pattern``; False if it was not held."""
        if self._grants.pop(pattern, None) is None:
            return False
        for other in self._partners.pop(pattern, ()):
            partners = self._partners[other]
            partners.discard(pattern)
            if not partners:
                del self._partners[other]
        return True

    def clear(self) -> list[str]:
        """Drop every pattern and return them."""
        held = list(self._grants)
        self._grants.clear()
        self._partners.clear()
        return held

    def wants(self, pattern: str, topic: str) -> bool:
        """Should a message on ``topic``, arriving for ``pattern``, be delivered?

        False when ``pattern`` is not held, or when another held pattern that sorts
        before it also matches ``topic`` (that one delivers it).
        """
        if pattern not in self._grants:
            return False
        partners = self._partners.get(pattern)
        if not partners:
            return True
        return not any(other < pattern and matches(other, topic) for other in partners)
