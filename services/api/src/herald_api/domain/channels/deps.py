"""Dependencies of the channels controllers."""

from __future__ import annotations

from litestar.datastructures import State

from herald_api.domain.channels.services import ChannelService


def provide_channel_service(state: State) -> ChannelService:
    service: ChannelService = state.channel_service
    return service
