"""Herald's JetStream streams, declared in one place and created idempotently.

All allow atomic batch publishes (:mod:`herald_common.jsbatch`): the api, its outbox relay
and the bridge write many messages per acknowledgement that way.
"""

from __future__ import annotations

import logging

from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, RePublish, RetentionPolicy, StorageType, StreamConfig, StreamInfo
from nats.js.errors import NotFoundError

from herald_common.config import Settings
from herald_common.events import EVENT_PREFIX
from herald_common.presence import EVENT_PREFIX as PRESENCE_PREFIX
from herald_common.presence import PRESENCE_STREAM
from herald_common.topics import LIVE_PREFIX, TOPIC_PREFIX

log = logging.getLogger(__name__)

EVENTS_STREAM = "HERALD_EVENTS"
TOPICS_STREAM = "HERALD_TOPICS"


def epoch_of(info: StreamInfo) -> str:
    """The epoch of a stream's history: its creation instant, in microseconds since the Unix epoch.

    Recreating the stream (history lost) changes it. The gateway stamps it on every
    ``message`` frame and the api on its history answers, so both must compute it here.
    "0" when the server did not report a creation time.
    """
    if info.created is None:
        return "0"
    return str(int(info.created.timestamp() * 1_000_000))


def events_stream_config(settings: Settings) -> StreamConfig:
    return StreamConfig(
        name=EVENTS_STREAM,
        subjects=[EVENT_PREFIX + ">"],
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        num_replicas=settings.nats_replicas,
        max_age=settings.events_max_age,
        duplicate_window=settings.dedup_window,
        discard=DiscardPolicy.OLD,
        allow_atomic=True,
    )


def topics_stream_config(settings: Settings) -> StreamConfig:
    return StreamConfig(
        name=TOPICS_STREAM,
        subjects=[TOPIC_PREFIX + ">"],
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        num_replicas=settings.nats_replicas,
        max_msgs_per_subject=settings.history_size,
        max_age=settings.history_ttl,
        duplicate_window=settings.dedup_window,
        discard=DiscardPolicy.OLD,
        allow_atomic=True,
        republish=RePublish(src=TOPIC_PREFIX + ">", dest=LIVE_PREFIX + ">"),
    )


def presence_stream_config(settings: Settings) -> StreamConfig:
    """Joins and leaves for backends: ``presence.join.<topic>``, ``presence.leave.<topic>``."""
    return StreamConfig(
        name=PRESENCE_STREAM,
        subjects=[PRESENCE_PREFIX + ">"],
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        num_replicas=settings.nats_replicas,
        max_age=settings.presence_events_max_age,
        duplicate_window=settings.dedup_window,
        discard=DiscardPolicy.OLD,
        allow_atomic=True,
    )


async def ensure_stream(js: JetStreamContext, config: StreamConfig) -> None:
    """Create the stream, or update it when its configuration changed."""
    assert config.name is not None
    try:
        await js.stream_info(config.name)
    except NotFoundError:
        await js.add_stream(config)
        log.info("created stream %s", config.name)
        return
    await js.update_stream(config)


async def ensure_streams(js: JetStreamContext, settings: Settings) -> None:
    await ensure_stream(js, events_stream_config(settings))
    await ensure_stream(js, topics_stream_config(settings))
    await ensure_stream(js, presence_stream_config(settings))
