"""Requests awaiting an answer from the gateway, correlated by frame ``id``."""

from __future__ import annotations

import enum
from collections.abc import Iterator
from dataclasses import dataclass

from herald_client import frames


class Kind(enum.Enum):
    SUBSCRIBE = "subscribe"
    UNSUBSCRIBE = "unsubscribe"
    PUBLISH = "publish"
    PRESENCE = "presence"
    #: The client's own presence query after a presence subscribe, to learn who is there.
    ROSTER = "roster"


@dataclass
class Request:
    kind: Kind
    frame: frames.ClientFrame
    #: Monotonic time after which it fails with a timeout (None: no timeout).
    deadline: float | None
    #: Written on the current socket (False: waiting for a connection).
    sent: bool = False
    #: The pattern, for subscribe and unsubscribe.
    pattern: str = ""
    #: For a subscribe: the app's call waiting for its first ``subscribed``, if any.
    waiter: int | None = None


class Requests:
    """Requests by id; ids are the client's own increasing integers."""

    def __init__(self) -> None:
        self._by_id: dict[int, Request] = {}
        self._next = 1

    def new_id(self) -> int:
        rid = self._next
        self._next += 1
        return rid

    def add(self, rid: int, request: Request) -> None:
        self._by_id[rid] = request

    def pop(self, rid: object) -> Request | None:
        if not isinstance(rid, int) or isinstance(rid, bool):
            return None
        return self._by_id.pop(rid, None)

    def get(self, rid: int) -> Request | None:
        return self._by_id.get(rid)

    def __iter__(self) -> Iterator[tuple[int, Request]]:
        return iter(list(self._by_id.items()))

    def __len__(self) -> int:
        return len(self._by_id)

    def deadline(self, *, subscribes: bool = True) -> float | None:
        times = [
            r.deadline
            for r in self._by_id.values()
            if r.deadline is not None and (subscribes or r.kind is not Kind.SUBSCRIBE)
        ]
        return min(times) if times else None

    def expired(self, now: float, *, subscribes: bool = True) -> list[tuple[int, Request]]:
        """Remove and return the requests past their deadline (subscribes only if ``subscribes``)."""
        gone = [
            (rid, r)
            for rid, r in self._by_id.items()
            if r.deadline is not None and r.deadline <= now and (subscribes or r.kind is not Kind.SUBSCRIBE)
        ]
        for rid, _ in gone:
            del self._by_id[rid]
        return gone

    def extend(self, kind: Kind, deadline: float) -> None:
        """Give the sent requests of ``kind`` until at least ``deadline``."""
        for r in self._by_id.values():
            if r.kind is kind and r.sent and r.deadline is not None:
                r.deadline = max(r.deadline, deadline)

    def clear(self) -> list[tuple[int, Request]]:
        gone = list(self._by_id.items())
        self._by_id.clear()
        return gone
