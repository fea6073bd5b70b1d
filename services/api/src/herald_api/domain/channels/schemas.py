"""Wire shapes of the channels endpoints (camelCase JSON)."""

from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import Meta

from herald_api.storage.protocols import Channel, Member
from herald_common.timefmt import rfc3339_us

Name = Annotated[str, Meta(min_length=1, max_length=200, description="Display name of the channel.")]


class CreateChannel(msgspec.Struct, kw_only=True, rename="camel", forbid_unknown_fields=True):
    name: Name


class UpdateChannel(msgspec.Struct, kw_only=True, rename="camel", forbid_unknown_fields=True):
    name: Name


class ChannelResource(msgspec.Struct, kw_only=True, rename="camel"):
    id: str
    name: str
    owner_id: str
    created_at: str


class MemberResource(msgspec.Struct, kw_only=True, rename="camel"):
    user_id: str
    added_at: str


def channel_resource(channel: Channel) -> ChannelResource:
    return ChannelResource(
        id=channel.id, name=channel.name, owner_id=channel.owner_id, created_at=rfc3339_us(channel.created_us)
    )


def member_resource(member: Member) -> MemberResource:
    return MemberResource(user_id=member.user_id, added_at=rfc3339_us(member.added_us))
