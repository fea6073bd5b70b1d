"""Per-token rate limiting of the mutating routes."""

from __future__ import annotations

from pathlib import Path

import pytest

from herald_api.app import create_app
from herald_api.ratelimit import RateLimiter
from tests.api.conftest import auth, make_settings, serving


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_bucket_allows_a_burst_then_the_rate() -> None:
    clock = FakeClock()
    limiter = RateLimiter(rate=2.0, burst=3, clock=clock)
    assert [limiter.allow("t") for _ in range(4)] == [True, True, True, False]
    assert limiter.allow("other")
    clock.now += 0.5
    assert limiter.allow("t")
    assert not limiter.allow("t")
    clock.now += 10
    assert [limiter.allow("t") for _ in range(4)] == [True, True, True, False]


def test_zero_rate_disables_the_limit() -> None:
    limiter = RateLimiter(rate=0, burst=1)
    assert all(limiter.allow("t") for _ in range(100))


async def test_posts_beyond_the_burst_get_429(tmp_path: Path, database_url: str, unused_nats_url: str) -> None:
    settings = make_settings(tmp_path, database_url, unused_nats_url, api_post_rate=0.001, api_post_burst=2)
    async with serving(create_app(settings)) as http:
        alice = auth("alice")
        codes = [(await http.post("/api/messages", json={"content": "x"}, headers=alice)).status_code for _ in range(3)]
        assert codes == [201, 201, 429]
        response = await http.post("/api/channels", json={"name": "c"}, headers=alice)
        assert response.status_code == 429
        assert response.json()["code"] == "rate_limited"
        assert (await http.get("/api/messages", headers=alice)).status_code == 200
        bob = await http.post("/api/messages", json={"content": "x"}, headers=auth("bob"))
        assert bob.status_code == 201


async def test_every_mutating_method_shares_the_write_limit(
    tmp_path: Path, database_url: str, unused_nats_url: str
) -> None:
    settings = make_settings(tmp_path, database_url, unused_nats_url, api_post_rate=0.001, api_post_burst=3)
    app = create_app(settings)
    async with serving(app) as http:
        alice = auth("alice")
        message = (await http.post("/api/messages", json={"content": "x"}, headers=alice)).json()
        channel = (await http.post("/api/channels", json={"name": "c"}, headers=alice)).json()
        edit = await http.patch(f"/api/messages/{message['id']}", json={"content": "y"}, headers=alice)
        assert edit.status_code == 200
        # The burst of 3 is spent: every method that changes something is refused.
        for method, path, body in [
            ("PATCH", f"/api/messages/{message['id']}", {"content": "z"}),
            ("DELETE", f"/api/messages/{message['id']}", None),
            ("PATCH", f"/api/channels/{channel['id']}", {"name": "d"}),
            ("PUT", f"/api/channels/{channel['id']}/members/bob", None),
            ("DELETE", f"/api/channels/{channel['id']}/members/bob", None),
            ("DELETE", f"/api/channels/{channel['id']}", None),
        ]:
            response = await http.request(method, path, json=body, headers=alice)
            assert response.status_code == 429, (method, path, response.text)
            assert response.json()["code"] == "rate_limited"
        # Reads are not limited, and nothing above was changed.
        got = await http.get(f"/api/messages/{message['id']}", headers=alice)
        assert got.status_code == 200 and got.json()["content"] == "y"
        assert (await http.get(f"/api/channels/{channel['id']}", headers=alice)).json()["name"] == "c"
        async with app.state.storage.transaction() as tx:
            assert len(await tx.outbox.pending(100)) == 2  # message.sent, message.updated


@pytest.mark.parametrize("fast_paths", [True, False], ids=["fast-path", "litestar"])
async def test_a_request_is_charged_once_even_if_a_handler_lists_the_guard(
    tmp_path: Path, database_url: str, unused_nats_url: str, fast_paths: bool
) -> None:
    # POST /api/publish lists the guard itself as well as getting the router's; a publisher
    # token is charged to the publishers' bucket.
    settings = make_settings(
        tmp_path, database_url, unused_nats_url, api_publisher_post_rate=0.001, api_publisher_post_burst=2
    )
    async with serving(create_app(settings, fast_paths=fast_paths)) as http:
        publisher = auth("p", "publisher")
        codes = [
            (await http.post("/api/publish", json={"topic": "a", "data": i}, headers=publisher)).status_code
            for i in range(3)
        ]
        assert codes == [202, 202, 429]
