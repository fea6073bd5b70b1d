"""Request/reply over NATS between services (the api answers, gateways ask)."""

from __future__ import annotations

import msgspec

#: The api answers membership questions here (queue group ``herald-api``).
MEMBERSHIP_SUBJECT = "herald.rpc.membership"
API_QUEUE = "herald-api"


class MembershipQuery(msgspec.Struct, frozen=True, rename="camel"):
    channel_id: str
    user_id: str


class MembershipReply(msgspec.Struct, frozen=True, rename="camel"):
    """``exists`` is false when the channel does not exist (then ``member`` is false too)."""

    exists: bool
    member: bool


query_encoder = msgspec.json.Encoder()
query_decoder = msgspec.json.Decoder(MembershipQuery)
reply_decoder = msgspec.json.Decoder(MembershipReply)
