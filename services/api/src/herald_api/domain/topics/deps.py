"""Dependencies of the topics controller."""

from __future__ import annotations

from litestar.datastructures import State

from herald_api.domain.topics.services import TopicService


def provide_topic_service(state: State) -> TopicService:
    service: TopicService = state.topic_service
    return service
