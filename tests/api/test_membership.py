"""The membership responder answers gateways over NATS request/reply."""

from __future__ import annotations

from pathlib import Path

import httpx
import nats
import pytest

from herald_api.app import create_app
from herald_common import rpc
from tests.api.conftest import auth, make_settings, serving, wait_until
from tests.support.natsclients import connect_nats

pytestmark = pytest.mark.integration


async def test_membership_questions_are_answered(tmp_path: Path, database_url: str, nats_url: str) -> None:
    app = create_app(make_settings(tmp_path, database_url, nats_url))
    nc = await connect_nats(nats_url)
    try:
        async with serving(app) as http:

            async def ready() -> bool:
                return (await http.get("/readyz")).status_code == 200

            await wait_until(ready)
            channel = (await http.post("/api/channels", json={"name": "c"}, headers=auth("alice"))).json()
            await http.put(f"/api/channels/{channel['id']}/members/bob", headers=auth("alice"))

            async def ask(channel_id: str, user_id: str) -> rpc.MembershipReply:
                query = rpc.query_encoder.encode(rpc.MembershipQuery(channel_id=channel_id, user_id=user_id))
                reply = await nc.request(rpc.MEMBERSHIP_SUBJECT, query, timeout=5)
                return rpc.reply_decoder.decode(reply.data)

            async def answered() -> bool:
                try:
                    await ask("x", "y")
                except nats.errors.NoRespondersError:
                    return False
                return True

            await wait_until(answered)
            assert await ask(channel["id"], "alice") == rpc.MembershipReply(exists=True, member=True)
            assert await ask(channel["id"], "bob") == rpc.MembershipReply(exists=True, member=True)
            assert await ask(channel["id"], "carol") == rpc.MembershipReply(exists=True, member=False)
            assert await ask("missing", "alice") == rpc.MembershipReply(exists=False, member=False)
            await _remove(http, channel["id"], "bob")
            assert await ask(channel["id"], "bob") == rpc.MembershipReply(exists=True, member=False)
            garbage = await nc.request(rpc.MEMBERSHIP_SUBJECT, b"not json", timeout=5)
            assert rpc.reply_decoder.decode(garbage.data) == rpc.MembershipReply(exists=False, member=False)
            deep = b'{"channelId":"c","userId":"u","x":' + b"[" * 5000 + b"]" * 5000 + b"}"
            answer = await nc.request(rpc.MEMBERSHIP_SUBJECT, deep, timeout=5)
            assert rpc.reply_decoder.decode(answer.data) == rpc.MembershipReply(exists=False, member=False)
    finally:
        await nc.close()


async def _remove(http: httpx.AsyncClient, channel_id: str, user_id: str) -> None:
    response = await http.delete(f"/api/channels/{channel_id}/members/{user_id}", headers=auth("alice"))
    assert response.status_code == 204
