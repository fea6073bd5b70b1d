"""Dependencies of the publish controller."""

from __future__ import annotations

from litestar.datastructures import State

from herald_api.domain.publish.services import PublishService


def provide_publish_service(state: State) -> PublishService:
    service: PublishService = state.publish_service
    return service
