"""``POST /api/publish`` and ``POST /api/publish/batch``."""

from __future__ import annotations

from litestar import Controller, post
from litestar.di import NamedDependency, Provide
from litestar.params import JSONBody

from herald_api.domain.publish.deps import provide_publish_service
from herald_api.domain.publish.schemas import BatchAccepted, BatchRequest, PublishAccepted, PublishRequest
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
        """Role `publisher` or `admin`. 202 once the event is durable (stored in JetStream, or
        in the api's outbox while NATS is away); it reaches the topic's subscribers at once."""
        event_id = await publisher.publish(claims, data.topic, data.data, data.idempotency_key)
        return PublishAccepted(event_id=event_id)

    @post(
        "/batch",
        guards=[post_rate_limit],
        summary="Publish up to 1,000 messages at once",
        status_code=202,
        responses=error_responses(400, 401, 403, 413, 429),
    )
    async def publish_batch(
        self,
        data: JSONBody[BatchRequest],
        claims: NamedDependency[Claims],
        publisher: NamedDependency[PublishService],
    ) -> BatchAccepted:
        """Role `publisher` or `admin`. All or nothing: a bad item is a 400 naming its index and
        nothing is published. Items of one topic are delivered in the order given."""
        return BatchAccepted(event_ids=await publisher.publish_batch(claims, data.items))
