"""``/api/topics/{topic}/history`` (the stored history a gateway replays) and ``/presence``, over REST."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, get
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, QueryParameter

from herald_api.domain.topics.deps import provide_topic_service
from herald_api.domain.topics.schemas import HistoryPage, PresenceUser, TopicPresence
from herald_api.domain.topics.services import TopicService
from herald_api.openapi import error_responses
from herald_common.tokens import Claims

#: Offsets are unsigned 64-bit stream sequences; ``since + 1`` must still be one.
MAX_SINCE = 2**63 - 1


class TopicController(Controller):
    path = "/topics"
    tags = ["topics"]  # noqa: RUF012 - litestar reads it as a class attribute
    dependencies = {"topics": Provide(provide_topic_service, sync_to_thread=False)}  # noqa: RUF012

    @get(
        "/{topic:str}/history",
        summary="Stored history of a topic, oldest first",
        responses=error_responses(400, 401, 403, 503),
    )
    async def history(
        self,
        topic: FromPath[str],
        claims: NamedDependency[Claims],
        topics: NamedDependency[TopicService],
        since: Annotated[
            int, QueryParameter(ge=0, le=MAX_SINCE, description="Only messages with a greater `offset`.")
        ] = 0,
        limit: Annotated[
            int | None, QueryParameter(ge=1, description="Page size; capped at HERALD_PAGE_LIMIT_MAX.")
        ] = None,
    ) -> HistoryPage:
        """The messages still stored for one concrete topic, with the `offset` and `epoch` a
        gateway puts on the same messages. Readable by whoever may subscribe to the topic:
        admins, the user of `messages.user.{sub}`, members of `messages.channel.{id}`, and
        holders of a `topics` grant covering it; others get 403. 400 `invalid_topic` for
        anything but a concrete topic; 503 `unavailable` while NATS is unreachable.
        Follow `nextSince` until it is null.
        """
        page = await topics.history(claims, topic, since, limit)
        return HistoryPage(items=page.items, epoch=page.epoch, next_since=page.next_since)

    @get(
        "/{topic:str}/presence",
        summary="Who is subscribed to a topic now, on any gateway",
        responses=error_responses(400, 401, 403, 503),
    )
    async def presence(
        self, topic: FromPath[str], claims: NamedDependency[Claims], topics: NamedDependency[TopicService]
    ) -> TopicPresence:
        """The users holding a subscription to exactly this topic on any gateway, with their
        socket counts. Readable by whoever may subscribe to the topic (as for history); others
        get 403. Above HERALD_PRESENCE_MAX_USERS users only `count` is given (`users` left out).
        A user whose last socket left stays listed for the grace period (HERALD_PRESENCE_GRACE);
        a crashed gateway's users go within HERALD_PRESENCE_TIMEOUT + 1 s. With no gateway
        running the topic is empty. 400 `invalid_topic` for anything but a concrete topic; 503
        `unavailable` while NATS is unreachable or no gateway answers in time.
        """
        found = await topics.presence(claims, topic)
        if found.users is None:
            return TopicPresence(topic=found.topic, count=found.count)
        users = [PresenceUser(user_id=u.user_id, connections=u.connections) for u in found.users]
        return TopicPresence(topic=found.topic, count=found.count, users=users)
