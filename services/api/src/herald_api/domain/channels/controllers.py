"""``/api/channels``: thin handlers over :class:`ChannelService`."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, delete, get, patch, post, put
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, JSONBody, PathParameter

from herald_api.domain.channels.deps import provide_channel_service
from herald_api.domain.channels.schemas import (
    ChannelResource,
    CreateChannel,
    MemberResource,
    UpdateChannel,
    channel_resource,
    member_resource,
)
from herald_api.domain.channels.services import ChannelService
from herald_api.openapi import error_responses
from herald_common.tokens import Claims

UserIdPath = Annotated[str, PathParameter(max_length=255, description="The member's user id (token `sub`).")]


class ChannelController(Controller):
    path = "/channels"
    tags = ["channels"]  # noqa: RUF012 - litestar reads it as a class attribute
    dependencies = {"channels": Provide(provide_channel_service, sync_to_thread=False)}  # noqa: RUF012

    @post(
        "/",
        summary="Create a channel",
        status_code=201,
        responses=error_responses(400, 401, 413, 429),
    )
    async def create(
        self, data: JSONBody[CreateChannel], claims: NamedDependency[Claims], channels: NamedDependency[ChannelService]
    ) -> ChannelResource:
        """The caller becomes its owner and first member."""
        return channel_resource(await channels.create(claims, data.name))

    @get("/", summary="Channels of the caller", responses=error_responses(401))
    async def list_channels(
        self, claims: NamedDependency[Claims], channels: NamedDependency[ChannelService]
    ) -> list[ChannelResource]:
        """Channels the caller belongs to; every channel for an admin."""
        return [channel_resource(c) for c in await channels.list_visible(claims)]

    @get("/{channel_id:str}", summary="Get a channel", responses=error_responses(400, 401, 404))
    async def read(
        self, channel_id: FromPath[str], claims: NamedDependency[Claims], channels: NamedDependency[ChannelService]
    ) -> ChannelResource:
        """Members and admins only; others get 404."""
        return channel_resource(await channels.get(claims, channel_id))

    @patch("/{channel_id:str}", summary="Rename a channel", responses=error_responses(400, 401, 403, 404, 413, 429))
    async def rename(
        self,
        channel_id: FromPath[str],
        data: JSONBody[UpdateChannel],
        claims: NamedDependency[Claims],
        channels: NamedDependency[ChannelService],
    ) -> ChannelResource:
        """Owner or admin only."""
        return channel_resource(await channels.rename(claims, channel_id, data.name))

    @delete(
        "/{channel_id:str}",
        summary="Delete a channel",
        status_code=204,
        responses=error_responses(400, 401, 403, 404, 429),
    )
    async def remove(
        self, channel_id: FromPath[str], claims: NamedDependency[Claims], channels: NamedDependency[ChannelService]
    ) -> None:
        """Owner or admin only; emits `channel.access_revoked` with `userId` null."""
        await channels.delete(claims, channel_id)

    @get("/{channel_id:str}/members", summary="Members of a channel", responses=error_responses(400, 401, 404))
    async def members(
        self, channel_id: FromPath[str], claims: NamedDependency[Claims], channels: NamedDependency[ChannelService]
    ) -> list[MemberResource]:
        """Members and admins only."""
        return [member_resource(m) for m in await channels.members(claims, channel_id)]

    @put(
        "/{channel_id:str}/members/{user_id:str}",
        summary="Add a member",
        status_code=204,
        responses=error_responses(400, 401, 403, 404, 429),
    )
    async def add_member(
        self,
        channel_id: FromPath[str],
        user_id: UserIdPath,
        claims: NamedDependency[Claims],
        channels: NamedDependency[ChannelService],
    ) -> None:
        """Owner or admin only; idempotent."""
        await channels.add_member(claims, channel_id, user_id)

    @delete(
        "/{channel_id:str}/members/{user_id:str}",
        summary="Remove a member",
        status_code=204,
        responses=error_responses(400, 401, 403, 404, 409, 429),
    )
    async def remove_member(
        self,
        channel_id: FromPath[str],
        user_id: UserIdPath,
        claims: NamedDependency[Claims],
        channels: NamedDependency[ChannelService],
    ) -> None:
        """Owner or admin only; emits `channel.access_revoked` when the user was a member."""
        await channels.remove_member(claims, channel_id, user_id)
