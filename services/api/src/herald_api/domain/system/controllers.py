"""Health, readiness and metrics (no token needed)."""

from __future__ import annotations

import logging

import msgspec
from litestar import Controller, Response, get
from litestar.datastructures import State
from litestar.openapi import ResponseSpec
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from herald_api.direct import DirectPublisher
from herald_api.metrics import ApiMetrics
from herald_api.natslink import NatsLink
from herald_api.relay import OutboxRelay
from herald_api.storage.protocols import Storage

log = logging.getLogger(__name__)


class Health(msgspec.Struct, kw_only=True):
    status: str
    nats: bool | None = None
    database: bool | None = None


async def _database_ok(storage: Storage) -> bool:
    try:
        await storage.ping()
    except Exception as exc:
        log.warning("database ping failed: %s", type(exc).__name__)
        return False
    return True


class SystemController(Controller):
    tags = ["system"]  # noqa: RUF012 - litestar reads it as a class attribute
    include_in_schema = True

    @get("/healthz", summary="Process is up")
    async def healthz(self) -> Health:
        return Health(status="ok")

    @get(
        "/readyz",
        summary="NATS connected and database answering",
        responses={503: ResponseSpec(data_container=Health, description="Not ready", generate_examples=False)},
    )
    async def readyz(self, state: State) -> Response[Health]:
        """200 when ready, 503 otherwise (the body says which dependency is missing)."""
        storage: Storage = state.storage
        link: NatsLink = state.nats
        nats_ok = link.connected
        db_ok = await _database_ok(storage)
        ready = nats_ok and db_ok
        return Response(
            Health(status="ready" if ready else "unavailable", nats=nats_ok, database=db_ok),
            status_code=200 if ready else 503,
        )

    @get("/metrics", summary="Prometheus metrics", media_type="text/plain")
    async def metrics(self, state: State) -> Response[bytes]:
        metrics: ApiMetrics = state.metrics
        storage: Storage = state.storage
        relay: OutboxRelay = state.relay
        link: NatsLink = state.nats
        try:
            async with storage.transaction(read_only=True) as tx:
                metrics.outbox_backlog.set(await tx.outbox.count())
        except Exception as exc:
            log.warning("cannot count the outbox backlog: %s", type(exc).__name__)
        metrics.outbox_published.set(relay.published)
        direct: DirectPublisher = state.direct_publisher
        metrics.events_direct.set(direct.published)
        metrics.nats_connected.set(1 if link.connected else 0)
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST, status_code=200)
