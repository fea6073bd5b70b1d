"""Answers gateways' membership questions over NATS request/reply."""

from __future__ import annotations

import logging

import msgspec
from nats.aio.client import Client
from nats.aio.msg import Msg

from herald_api.storage.protocols import Storage
from herald_common import rpc

log = logging.getLogger(__name__)

_encoder = msgspec.json.Encoder()


async def membership_reply(storage: Storage, query: rpc.MembershipQuery) -> rpc.MembershipReply:
    async with storage.transaction(read_only=True) as tx:
        channel = await tx.channels.get(query.channel_id)
        if channel is None:
            return rpc.MembershipReply(exists=False, member=False)
        return rpc.MembershipReply(exists=True, member=await tx.channels.is_member(query.channel_id, query.user_id))


class MembershipResponder:
    def __init__(self, storage: Storage) -> None:
        self._storage = storage

    async def subscribe(self, client: Client) -> None:
        """Join the api queue group; nats-py keeps the subscription across reconnects."""
        await client.subscribe(rpc.MEMBERSHIP_SUBJECT, queue=rpc.API_QUEUE, cb=self._handle)

    async def _handle(self, msg: Msg) -> None:
        if not msg.reply:
            return
        try:
            query = rpc.query_decoder.decode(msg.data)
        except (msgspec.MsgspecError, RecursionError):
            # A malformed question gets the safe answer: no access.
            await msg.respond(_encoder.encode(rpc.MembershipReply(exists=False, member=False)))
            return
        try:
            reply = await membership_reply(self._storage, query)
        except Exception:
            log.exception("membership lookup failed")
            return
        await msg.respond(_encoder.encode(reply))
