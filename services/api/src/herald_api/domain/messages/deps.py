"""Dependencies of the messages controllers."""

from __future__ import annotations

from litestar.datastructures import State

from herald_api.domain.messages.services import MessageService


def provide_message_service(state: State) -> MessageService:
    service: MessageService = state.message_service
    return service
