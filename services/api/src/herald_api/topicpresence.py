"""Asking the gateways who is on a topic (``herald.rpc.presence``).

Every gateway holds the presence of all of them, so one answer is enough: the request
goes to the queue group ``herald-gateway`` and the first gateway answers. No gateway
running means no socket anywhere: the topic is empty.
"""

from __future__ import annotations

import logging

import msgspec
from nats.errors import NoRespondersError

from herald_api.natslink import NatsLink
from herald_common import presence
from herald_common.errors import ErrorCode, HeraldError

log = logging.getLogger(__name__)

QUERY_TIMEOUT = 2.0


def _unavailable(why: str) -> HeraldError:
    return HeraldError(ErrorCode.UNAVAILABLE, f"topic presence is unavailable: {why}")


class TopicPresenceReader:
    def __init__(self, link: NatsLink) -> None:
        self._link = link

    async def read(self, topic: str) -> presence.TopicPresence:
        if not self._link.connected:
            raise _unavailable("not connected to NATS")
        query = presence.encoder.encode(presence.TopicQuery(topic=topic))
        try:
            answer = await self._link.client().request(presence.QUERY_SUBJECT, query, timeout=QUERY_TIMEOUT)
        except NoRespondersError:
            return presence.TopicPresence(topic=topic, count=0, users=[])
        except Exception as exc:  # timeouts, a connection lost meanwhile
            log.warning("asking the gateways for presence failed: %s", type(exc).__name__)
            raise _unavailable("no gateway answered") from None
        try:
            return presence.answer_decoder.decode(answer.data)
        except msgspec.DecodeError:
            raise _unavailable("a gateway answered garbage") from None
