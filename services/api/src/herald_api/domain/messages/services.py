"""Message rules: who may post, read, edit and delete; events go out via the outbox."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from herald_api.domain.messages.schemas import message_event_data
from herald_api.outbox import Notify, record_event
from herald_api.storage.groupcommit import GroupCommit
from herald_api.storage.protocols import Cursor, Message, MessageFilter, Storage, Transaction, now_us
from herald_common.errors import ErrorCode, HeraldError
from herald_common.events import MESSAGE_DELETED, MESSAGE_SENT, MESSAGE_UPDATED
from herald_common.tokens import Claims

DEFAULT_PAGE = 50


@dataclass(frozen=True)
class Page:
    messages: list[Message]
    next_before: Cursor | None


def _not_found(message_id: str) -> HeraldError:
    return HeraldError(ErrorCode.NOT_FOUND, f"message {message_id!r} not found")


async def _visible_channel(tx: Transaction, claims: Claims, channel_id: str) -> None:
    """404 unless the channel exists and the caller may see it (a member, or an admin): a
    channel one may not see answers exactly like one that does not exist, as on every
    channel route, so its existence does not leak."""
    if await tx.channels.get(channel_id) is None or (
        not claims.is_admin and not await tx.channels.is_member(channel_id, claims.sub)
    ):
        raise HeraldError(ErrorCode.NOT_FOUND, f"channel {channel_id!r} not found")


def _require_text(content: str) -> str:
    if not content.strip():
        raise HeraldError(ErrorCode.BAD_REQUEST, "content must not be blank")
    return content


class MessageService:
    def __init__(self, storage: Storage, writes: GroupCommit, notify: Notify, page_limit_max: int) -> None:
        self._storage = storage
        self._writes = writes
        self._notify = notify
        self._page_limit_max = page_limit_max

    async def _can_read(self, tx: Transaction, claims: Claims, message: Message) -> bool:
        if claims.is_admin or claims.sub in (message.sender_id, message.recipient_id):
            return True
        return message.channel_id is not None and await tx.channels.is_member(message.channel_id, claims.sub)

    async def create(self, claims: Claims, content: str, recipient_id: str | None, channel_id: str | None) -> Message:
        _require_text(content)
        if recipient_id is not None and channel_id is not None:
            raise HeraldError(ErrorCode.BAD_REQUEST, "give recipientId or channelId, not both")
        message = Message(
            id=uuid.uuid4().hex,
            sender_id=claims.sub,
            recipient_id=recipient_id,
            channel_id=channel_id,
            content=content,
            created_us=now_us(),
        )

        async def store(tx: Transaction) -> None:
            if channel_id is not None:
                await _visible_channel(tx, claims, channel_id)
                if not await tx.channels.is_member(channel_id, claims.sub):
                    raise HeraldError(ErrorCode.FORBIDDEN, "only members may post to this channel")
            await tx.messages.add(message)
            await record_event(tx, MESSAGE_SENT, message_event_data(message))

        await self._writes.write(store)
        self._notify()
        return message

    async def get(self, claims: Claims, message_id: str) -> Message:
        async with self._storage.transaction(read_only=True) as tx:
            message = await tx.messages.get(message_id)
            if message is None or not await self._can_read(tx, claims, message):
                raise _not_found(message_id)
            return message

    async def _own(self, tx: Transaction, claims: Claims, message_id: str) -> Message:
        message = await tx.messages.get(message_id)
        if message is None or not await self._can_read(tx, claims, message):
            raise _not_found(message_id)
        if message.sender_id != claims.sub:
            raise HeraldError(ErrorCode.FORBIDDEN, "only the sender may change or delete a message")
        # Reading one's own old message survives leaving the channel; writing to it does
        # not: the change would reach the channel's current members.
        if (
            message.channel_id is not None
            and not claims.is_admin
            and not await tx.channels.is_member(message.channel_id, claims.sub)
        ):
            raise HeraldError(ErrorCode.FORBIDDEN, "only current members of the channel may change its messages")
        return message

    async def update(self, claims: Claims, message_id: str, content: str) -> Message:
        _require_text(content)
        async with self._storage.transaction() as tx:
            message = await self._own(tx, claims, message_id)
            await tx.messages.set_content(message_id, content)
            updated = Message(
                id=message.id,
                sender_id=message.sender_id,
                recipient_id=message.recipient_id,
                channel_id=message.channel_id,
                content=content,
                created_us=message.created_us,
            )
            await record_event(tx, MESSAGE_UPDATED, message_event_data(updated))
        self._notify()
        return updated

    async def delete(self, claims: Claims, message_id: str) -> None:
        async with self._storage.transaction() as tx:
            message = await self._own(tx, claims, message_id)
            await tx.messages.delete(message_id)
            await record_event(tx, MESSAGE_DELETED, message_event_data(message))
        self._notify()

    def clamp_limit(self, limit: int | None) -> int:
        if limit is None:
            return min(DEFAULT_PAGE, self._page_limit_max)
        return min(limit, self._page_limit_max)

    async def history(
        self,
        claims: Claims,
        *,
        channel_id: str | None,
        with_user: str | None,
        before: str | None,
        limit: int | None,
    ) -> Page:
        if channel_id is not None and with_user is not None:
            raise HeraldError(ErrorCode.BAD_REQUEST, "give channelId or withUser, not both")
        cursor = Cursor.decode(before) if before is not None else None
        size = self.clamp_limit(limit)
        if channel_id is not None:
            where = MessageFilter(channel_id=channel_id)
        elif with_user is not None:
            where = MessageFilter(between=(claims.sub, with_user))
        else:
            where = MessageFilter(involving=claims.sub)
        async with self._storage.transaction(read_only=True) as tx:
            if channel_id is not None:
                await _visible_channel(tx, claims, channel_id)
            rows = await tx.messages.page(where, cursor, size + 1)
        if len(rows) > size:
            rows = rows[:size]
            last = rows[-1]
            return Page(rows, Cursor(last.created_us, last.id))
        return Page(rows, None)
