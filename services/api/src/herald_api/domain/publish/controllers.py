"""``POST /api/publish``."""

from __future__ import annotations

from litestar import Controller, post
from litestar.di import NamedDependency, Provide
from litestar.params import JSONBody

from herald_api.domain.publish.deps import provide_publish_service
from herald_api.domain.publish.schemas import PublishAccepted, PublishRequest
from herald_api.domain.publish.services import PublishService
from herald_api.openapi import error_responses
from herald_api.ratelimit import post_rate_limit
from herald_common.tokens import Claims


class PublishController(Controller):
    path = "/publish"
    tags = ["publish"]  # noqa: RUF012 - litestar reads it as a class attribute
    dependencies = {"publisher": Provide(provide_publish_service, sync_to_thread=False)}  # noqa: RUF012

    @post(
        "/",
        guards=[post_rate_limit],
        summary="Publish to a topic",
        status_code=202,
        responses=error_responses(400, 401, 403, 413, 429),
    )
    async def publish(
        self,
        data: JSONBody[PublishRequest],
        claims: NamedDependency[Claims],
        publisher: NamedDependency[PublishService],
    ) -> PublishAccepted:
        """Role `publisher` or `admin`. The event is stored first and delivered to the topic
        as soon as NATS acknowledges it."""
        return PublishAccepted(event_id=await publisher.publish(claims, data.topic, data.data))
