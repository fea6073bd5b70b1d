"""The storage contract the domain services rely on, and its value types.

Services only see these protocols; :mod:`herald_api.storage.sql` implements them with
SQLAlchemy for SQLite and PostgreSQL.
"""

from __future__ import annotations

import base64
import binascii
import time
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Protocol

from herald_common.errors import ErrorCode, HeraldError


def now_us() -> int:
    """Wall-clock time in integer microseconds since the epoch (how timestamps are stored)."""
    return time.time_ns() // 1000


@dataclass(frozen=True, slots=True)
class Message:
    id: str
    sender_id: str
    recipient_id: str | None
    channel_id: str | None
    content: str
    created_us: int


@dataclass(frozen=True, slots=True)
class Channel:
    id: str
    name: str
    owner_id: str
    created_us: int


@dataclass(frozen=True, slots=True)
class Member:
    channel_id: str
    user_id: str
    added_us: int


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """One event waiting to be published; ``seq`` orders entries and identifies the row."""

    seq: int
    event_id: str
    subject: str
    payload: bytes
    #: W3C trace headers of the request that recorded the event, as JSON; None without tracing.
    trace_context: str | None = None


@dataclass(frozen=True, slots=True)
class Cursor:
    """A position in newest-first message order: strictly older than (created_us, id)."""

    created_us: int
    message_id: str

    def encode(self) -> str:
        raw = f"{self.created_us}:{self.message_id}".encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> Cursor:
        """Parse a cursor made by :meth:`encode`; raises ``bad_request`` otherwise."""
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
            created, _, message_id = raw.partition(":")
            if not message_id:
                raise ValueError("no id")
            return cls(int(created), message_id)
        except (ValueError, binascii.Error, UnicodeDecodeError):
            raise HeraldError(ErrorCode.BAD_REQUEST, "'before' is not a cursor returned by this api") from None


@dataclass(frozen=True, slots=True)
class MessageFilter:
    """Which messages a history page covers (exactly one mode applies).

    ``channel_id``: messages of that channel. ``between``: direct messages between the two
    users. ``involving``: messages sent by or to that user.
    """

    channel_id: str | None = None
    between: tuple[str, str] | None = None
    involving: str | None = None


class MessageRepository(Protocol):
    async def add(self, message: Message) -> None: ...

    async def get(self, message_id: str) -> Message | None: ...

    async def set_content(self, message_id: str, content: str) -> None: ...

    async def delete(self, message_id: str) -> None: ...

    async def page(self, where: MessageFilter, before: Cursor | None, limit: int) -> list[Message]:
        """Newest first, ordered by (created_us, id) descending, strictly after ``before``."""
        ...


class ChannelRepository(Protocol):
    async def add(self, channel: Channel) -> None: ...

    async def get(self, channel_id: str) -> Channel | None: ...

    async def rename(self, channel_id: str, name: str) -> None: ...

    async def delete(self, channel_id: str) -> None:
        """Delete the channel and its memberships."""
        ...

    async def list_all(self) -> list[Channel]: ...

    async def list_for_member(self, user_id: str) -> list[Channel]: ...

    async def add_member(self, member: Member) -> bool:
        """Add a membership; False when it already existed."""
        ...

    async def remove_member(self, channel_id: str, user_id: str) -> bool:
        """Remove a membership; False when there was none."""
        ...

    async def is_member(self, channel_id: str, user_id: str) -> bool: ...

    async def members(self, channel_id: str) -> list[Member]: ...


class OutboxRepository(Protocol):
    async def add(self, event_id: str, subject: str, payload: bytes, trace_context: str | None = None) -> None: ...

    async def pending(self, limit: int) -> list[OutboxEntry]:
        """The oldest ``limit`` entries, in insertion order."""
        ...

    async def remove(self, seqs: list[int]) -> None: ...

    async def count(self) -> int: ...


class Savepoint:
    """What a caller learns about a savepoint once its transaction has committed.

    A store may defer writes whose result nobody asked for until the transaction next
    reads or commits (SQLite runs a whole batch of them in one go). When such a write
    fails, its savepoint is rolled back alone, the transaction goes on, and ``failure``
    holds the error. A write that failed before the savepoint block ended raises there
    instead, as usual.
    """

    __slots__ = ("failure",)

    def __init__(self) -> None:
        self.failure: BaseException | None = None


class Transaction(Protocol):
    """Repositories bound to one database transaction: all or nothing is committed.

    Writes that return nothing (``add``, ``set_content``, ``delete``, ``remove``...) may be
    deferred until the next read or the commit: their errors then surface there (from the
    read, from the end of the ``transaction()`` block, or in :attr:`Savepoint.failure`).
    """

    @property
    def messages(self) -> MessageRepository: ...

    @property
    def channels(self) -> ChannelRepository: ...

    @property
    def outbox(self) -> OutboxRepository: ...

    def savepoint(self) -> AbstractAsyncContextManager[Savepoint]:
        """A nested block: rolled back alone when it raises, kept when the transaction commits
        (unless a write deferred into it fails later: see :class:`Savepoint`)."""
        ...


class Storage(Protocol):
    def transaction(self, *, read_only: bool = False) -> AbstractAsyncContextManager[Transaction]:
        """Commits when the block exits normally, rolls back when it raises.

        ``read_only`` transactions may not write (a write raises ``RuntimeError``) and do
        not take SQLite's write lock, so they never wait behind writers.
        """
        ...

    def exclusive(self, name: str) -> AbstractAsyncContextManager[bool]:
        """Try to take the lock ``name``, shared by every api process on this database,
        without waiting: the block gets True when this process holds it until the block
        ends, False when another does."""
        ...

    async def migrate(self) -> list[int]:
        """Apply pending schema migrations; returns the versions applied now."""
        ...

    async def ping(self) -> None:
        """Raise when the database does not answer."""
        ...

    async def close(self) -> None: ...
