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


def _stream_config(settings: Settings, name: str, prefix: str, **limits: object) -> StreamConfig:
    """What every Herald stream shares (file storage, the configured replicas, the duplicate
    window, atomic batches, the oldest messages discarded first) plus its own ``limits``."""
    return StreamConfig(
        name=name,
        subjects=[prefix + ">"],
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        num_replicas=settings.nats_replicas,
        duplicate_window=settings.dedup_window,
        discard=DiscardPolicy.OLD,
        allow_atomic=True,
        **limits,  # type: ignore[arg-type]  # StreamConfig's own keyword arguments
    )


def events_stream_config(settings: Settings) -> StreamConfig:
    return _stream_config(settings, EVENTS_STREAM, EVENT_PREFIX, max_age=settings.events_max_age)


def topics_stream_config(settings: Settings) -> StreamConfig:
    return _stream_config(
        settings,
        TOPICS_STREAM,
        TOPIC_PREFIX,
        max_msgs_per_subject=settings.history_size,
        max_age=settings.history_ttl,
        republish=RePublish(src=TOPIC_PREFIX + ">", dest=LIVE_PREFIX + ">"),
    )


def presence_stream_config(settings: Settings) -> StreamConfig:
    """Joins and leaves for backends: ``presence.join.<topic>``, ``presence.leave.<topic>``."""
    return _stream_config(settings, PRESENCE_STREAM, PRESENCE_PREFIX, max_age=settings.presence_events_max_age)


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
