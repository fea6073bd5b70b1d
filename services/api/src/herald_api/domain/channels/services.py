"""Channel rules; revoking access emits ``channel.access_revoked`` via the outbox."""

from __future__ import annotations

import uuid

from herald_api.domain.channels.guards import require_manage
from herald_api.outbox import Notify, record_event
from herald_api.storage.protocols import Channel, Member, Storage, Transaction, now_us
from herald_common.errors import ErrorCode, HeraldError
from herald_common.events import CHANNEL_ACCESS_REVOKED
from herald_common.tokens import Claims


def _not_found(channel_id: str) -> HeraldError:
    return HeraldError(ErrorCode.NOT_FOUND, f"channel {channel_id!r} not found")


def _require_name(name: str) -> str:
    if not name.strip():
        raise HeraldError(ErrorCode.BAD_REQUEST, "name must not be blank")
    return name


class ChannelService:
    def __init__(self, storage: Storage, notify: Notify) -> None:
        self._storage = storage
        self._notify = notify

    async def _visible(self, tx: Transaction, claims: Claims, channel_id: str) -> Channel:
        """The channel if the caller may see it (member or admin); 404 otherwise."""
        channel = await tx.channels.get(channel_id)
        if channel is None:
            raise _not_found(channel_id)
        if not claims.is_admin and not await tx.channels.is_member(channel_id, claims.sub):
            raise _not_found(channel_id)
        return channel

    async def _managed(self, tx: Transaction, claims: Claims, channel_id: str) -> Channel:
        channel = await self._visible(tx, claims, channel_id)
        require_manage(claims, channel)
        return channel

    async def create(self, claims: Claims, name: str) -> Channel:
        channel = Channel(id=uuid.uuid4().hex, name=_require_name(name), owner_id=claims.sub, created_us=now_us())
        async with self._storage.transaction() as tx:
            await tx.channels.add(channel)
            await tx.channels.add_member(Member(channel.id, claims.sub, channel.created_us))
        return channel

    async def list_visible(self, claims: Claims) -> list[Channel]:
        async with self._storage.transaction(read_only=True) as tx:
            if claims.is_admin:
                return await tx.channels.list_all()
            return await tx.channels.list_for_member(claims.sub)

    async def get(self, claims: Claims, channel_id: str) -> Channel:
        async with self._storage.transaction(read_only=True) as tx:
            return await self._visible(tx, claims, channel_id)

    async def rename(self, claims: Claims, channel_id: str, name: str) -> Channel:
        _require_name(name)
        async with self._storage.transaction() as tx:
            channel = await self._managed(tx, claims, channel_id)
            await tx.channels.rename(channel_id, name)
        return Channel(id=channel.id, name=name, owner_id=channel.owner_id, created_us=channel.created_us)

    async def delete(self, claims: Claims, channel_id: str) -> None:
        async with self._storage.transaction() as tx:
            await self._managed(tx, claims, channel_id)
            await tx.channels.delete(channel_id)
            await record_event(tx, CHANNEL_ACCESS_REVOKED, {"channelId": channel_id, "userId": None})
        self._notify()

    async def add_member(self, claims: Claims, channel_id: str, user_id: str) -> None:
        async with self._storage.transaction() as tx:
            await self._managed(tx, claims, channel_id)
            await tx.channels.add_member(Member(channel_id, user_id, now_us()))

    async def remove_member(self, claims: Claims, channel_id: str, user_id: str) -> None:
        async with self._storage.transaction() as tx:
            channel = await self._managed(tx, claims, channel_id)
            if user_id == channel.owner_id:
                raise HeraldError(ErrorCode.CONFLICT, "the owner cannot be removed; delete the channel instead")
            removed = await tx.channels.remove_member(channel_id, user_id)
            if removed:
                await record_event(tx, CHANNEL_ACCESS_REVOKED, {"channelId": channel_id, "userId": user_id})
        if removed:
            self._notify()

    async def members(self, claims: Claims, channel_id: str) -> list[Member]:
        async with self._storage.transaction(read_only=True) as tx:
            await self._visible(tx, claims, channel_id)
            return await tx.channels.members(channel_id)
