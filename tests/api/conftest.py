"""Fixtures for the api tests: storage over SQLite and PostgreSQL, the app, tokens, NATS."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import httpx
import pytest
from litestar import Litestar
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from herald_api.app import create_app
from herald_api.fastpath import producer_routes
from herald_api.storage.engine import create_engine
from herald_api.storage.protocols import Storage
from herald_api.storage.sql import SqlStorage
from herald_common.config import Settings, load_settings
from herald_common.events import Event, decode_event
from herald_common.streams import EVENTS_STREAM
from herald_common.tokens import issue_token
from tests.support.natsclients import connect_nats
from tests.support.procs import free_port

SECRET = "api-test-secret-of-at-least-32-bytes-long"


async def _reset_postgres(url: str) -> None:
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    finally:
        await conn.close()


@pytest.fixture(params=["sqlite", "postgres"])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database: a SQLite file in tmp_path, or the session's PostgreSQL
    (``TEST_POSTGRES_URL`` or a throwaway cluster, see tests/support/postgres.py)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'db' / 'herald.db'}"
    url: str = request.getfixturevalue("postgres_url")
    await _reset_postgres(url)
    return url


@pytest.fixture
def unused_nats_url() -> str:
    """A NATS URL nothing listens on: the api must work without NATS."""
    return f"nats://127.0.0.1:{free_port()}"


def make_settings(tmp_path: Path, database_url: str, nats_url: str, **overrides: Any) -> Settings:
    return load_settings(
        {},
        data_dir=str(tmp_path / "data"),
        database_url=database_url,
        nats_url=nats_url,
        jwt_secret=SECRET,
        **overrides,
    )


@pytest.fixture
def settings(tmp_path: Path, database_url: str, unused_nats_url: str) -> Settings:
    return make_settings(tmp_path, database_url, unused_nats_url)


@pytest.fixture
async def storage(settings: Settings) -> AsyncIterator[SqlStorage]:
    store = SqlStorage(create_engine(settings))
    try:
        yield store
    finally:
        await store.close()


@pytest.fixture
def app(settings: Settings) -> Litestar:
    return create_app(settings)


@asynccontextmanager
async def serving(app: Litestar) -> AsyncIterator[httpx.AsyncClient]:
    """Run the app's lifespan and talk to it in this event loop (litestar's AsyncTestClient
    runs the app on another loop, where the test could not share its database pool).

    The lifespan runs in a task of its own because it holds an anyio cancel scope, which
    must be exited by the task that entered it.
    """
    started = asyncio.Event()
    finish = asyncio.Event()

    async def run_lifespan() -> None:
        async with app.lifespan():
            started.set()
            await finish.wait()

    task = asyncio.create_task(run_lifespan())
    waiter = asyncio.create_task(started.wait())
    await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        waiter.cancel()
        task.result()
    try:
        transport = httpx.ASGITransport(app=producer_routes(app))  # type: ignore[arg-type]  # litestar types its scope narrower
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield http
    finally:
        finish.set()
        await task


@pytest.fixture
async def client(app: Litestar) -> AsyncIterator[httpx.AsyncClient]:
    async with serving(app) as http:
        yield http


def auth(sub: str, *roles: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_token(SECRET, sub, roles=roles)}"}


def app_storage(app: Litestar) -> Storage:
    store: Storage = app.state.storage
    return store


async def wait_until(predicate: Callable[[], Awaitable[bool]], within: float = 20.0) -> None:
    """Poll ``predicate`` until true; fails the test after ``within`` seconds."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if await predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"condition not met within {within}s")


class EventReader:
    """Reads HERALD_EVENTS in order, straight from JetStream."""

    def __init__(self, js: JetStreamContext) -> None:
        self._js = js
        self._next = 1

    async def next(self, within: float = 20.0) -> Event:
        found: list[Event] = []

        async def available() -> bool:
            try:
                msg = await self._js.get_msg(EVENTS_STREAM, self._next)
            except NotFoundError:
                return False
            except Exception:  # stream not declared yet, server restarting
                return False
            assert msg.data is not None
            found.append(decode_event(msg.data))
            return True

        await wait_until(available, within)
        self._next += 1
        return found[0]

    async def count(self) -> int:
        info = await self._js.stream_info(EVENTS_STREAM)
        return int(info.state.messages)


@pytest.fixture
async def events(nats_url: str) -> AsyncIterator[EventReader]:
    nc = await connect_nats(nats_url, max_reconnect_attempts=-1, reconnect_time_wait=0.2)
    try:
        yield EventReader(nc.jetstream())
    finally:
        await nc.close()
