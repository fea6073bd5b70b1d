"""``/api/messages``: thin handlers over :class:`MessageService`."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, delete, get, patch, post
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, JSONBody, QueryParameter

from herald_api.domain.messages.deps import provide_message_service
from herald_api.domain.messages.schemas import (
    CreateMessage,
    MessagePage,
    MessageResource,
    UpdateMessage,
    message_resource,
)
from herald_api.domain.messages.services import MessageService
from herald_api.openapi import error_responses
from herald_common.tokens import Claims


class MessageController(Controller):
    path = "/messages"
    tags = ["messages"]  # noqa: RUF012 - litestar reads it as a class attribute
    dependencies = {"messages": Provide(provide_message_service, sync_to_thread=False)}  # noqa: RUF012

    @post(
        "/",
        summary="Send a message",
        status_code=201,
        responses=error_responses(400, 401, 403, 404, 413, 429),
    )
    async def create(
        self, data: JSONBody[CreateMessage], claims: NamedDependency[Claims], messages: NamedDependency[MessageService]
    ) -> MessageResource:
        """Stores the message and emits `message.sent`. Posting to a channel needs membership:
        a channel the caller may not see is 404, as on every channel route."""
        message = await messages.create(claims, data.content, data.recipient_id, data.channel_id)
        return message_resource(message)

    @get("/", summary="Message history, newest first", responses=error_responses(400, 401, 404))
    async def history(
        self,
        claims: NamedDependency[Claims],
        messages: NamedDependency[MessageService],
        channel_id: Annotated[
            str | None, QueryParameter(name="channelId", description="Messages of this channel.")
        ] = None,
        with_user: Annotated[
            str | None, QueryParameter(name="withUser", description="Direct messages between the caller and this user.")
        ] = None,
        before: Annotated[
            str | None, QueryParameter(description="Cursor from a previous page's `nextBefore`: older messages only.")
        ] = None,
        limit: Annotated[
            int | None, QueryParameter(ge=1, description="Page size; capped at HERALD_PAGE_LIMIT_MAX.")
        ] = None,
    ) -> MessagePage:
        """Without `channelId` or `withUser`: messages sent by or to the caller.

        Pages are ordered by (createdAt, id) descending, so messages with equal timestamps
        are never skipped or repeated; follow `nextBefore` until it is null.
        """
        page = await messages.history(claims, channel_id=channel_id, with_user=with_user, before=before, limit=limit)
        return MessagePage(
            items=[message_resource(m) for m in page.messages],
            next_before=page.next_before.encode() if page.next_before else None,
        )

    @get("/{message_id:str}", summary="Get one message", responses=error_responses(400, 401, 404))
    async def read(
        self, message_id: FromPath[str], claims: NamedDependency[Claims], messages: NamedDependency[MessageService]
    ) -> MessageResource:
        """Visible to its sender, its recipient, members of its channel and admins; else 404."""
        return message_resource(await messages.get(claims, message_id))

    @patch("/{message_id:str}", summary="Edit a message", responses=error_responses(400, 401, 403, 404, 413, 429))
    async def update(
        self,
        message_id: FromPath[str],
        data: JSONBody[UpdateMessage],
        claims: NamedDependency[Claims],
        messages: NamedDependency[MessageService],
    ) -> MessageResource:
        """Sender only; emits `message.updated`."""
        return message_resource(await messages.update(claims, message_id, data.content))

    @delete(
        "/{message_id:str}",
        summary="Delete a message",
        status_code=204,
        responses=error_responses(400, 401, 403, 404, 429),
    )
    async def remove(
        self, message_id: FromPath[str], claims: NamedDependency[Claims], messages: NamedDependency[MessageService]
    ) -> None:
        """Sender only; emits `message.deleted` with the deleted message."""
        await messages.delete(claims, message_id)
