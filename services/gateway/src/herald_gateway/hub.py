"""Which local connections hold which pattern (pure bookkeeping).

The gateway keeps exactly one NATS subscription per pattern that at least one local
connection holds; :class:`Interest` says when the first member of a pattern arrives and
when the last one leaves, and who to fan a message out to.
"""

from __future__ import annotations

from collections.abc import Hashable, Set
from typing import Generic, TypeVar

M = TypeVar("M", bound=Hashable)


class Interest(Generic[M]):
    def __init__(self) -> None:
        self._members: dict[str, set[M]] = {}

    def add(self, pattern: str, member: M) -> bool:
        """Record that ``member`` holds ``pattern``; True if it is the pattern's first."""
        members = self._members.get(pattern)
        if members is None:
            self._members[pattern] = {member}
            return True
        members.add(member)
        return False

    def remove(self, pattern: str, member: M) -> bool:
        """Forget that ``member`` holds ``pattern``; True if nobody holds it any more."""
        members = self._members.get(pattern)
        if members is None or member not in members:
            return False
        members.discard(member)
        if members:
            return False
        del self._members[pattern]
        return True

    def members(self, pattern: str) -> Set[M]:
        return self._members.get(pattern, frozenset())

    def __contains__(self, pattern: object) -> bool:
        return pattern in self._members

    def patterns(self) -> list[str]:
        return list(self._members)

    @property
    def total(self) -> int:
        """Subscriptions summed over connections."""
        return sum(len(m) for m in self._members.values())
