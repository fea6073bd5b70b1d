"""Building the litestar application and the resources it owns."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from litestar import Litestar, Router
from litestar.config.cors import CORSConfig
from litestar.datastructures import State
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin, YamlRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme

from herald_api.auth import VerifiedTokens, provide_claims, require_token
from herald_api.console.routes import console_router
from herald_api.direct import DirectPublisher
from herald_api.docsui import SelfHostedSwagger
from herald_api.domain.channels.controllers import ChannelController
from herald_api.domain.channels.services import ChannelService
from herald_api.domain.messages.controllers import MessageController
from herald_api.domain.messages.services import MessageService
from herald_api.domain.operators.controllers import OperatorController
from herald_api.domain.operators.services import OperatorService
from herald_api.domain.publish.controllers import PublishController
from herald_api.domain.publish.services import PublishService
from herald_api.domain.system.controllers import SystemController
from herald_api.domain.topics.controllers import TopicController
from herald_api.domain.topics.services import TopicService
from herald_api.errors import EXCEPTION_HANDLERS
from herald_api.membership import MembershipResponder
from herald_api.metrics import ApiMetrics, metrics_middleware
from herald_api.natslink import NatsLink
from herald_api.nodetable import NodeTable, NodeWatcher
from herald_api.ratelimit import RateLimiter, write_rate_limit
from herald_api.relay import OutboxRelay
from herald_api.request import HeraldRequest
from herald_api.secheaders import add_security_headers
from herald_api.storage.engine import create_engine
from herald_api.storage.groupcommit import GroupCommit
from herald_api.storage.sql import SqlStorage
from herald_api.topichistory import TopicHistory
from herald_api.topicpresence import TopicPresenceReader
from herald_api.tracing import tracing_middleware
from herald_common.beacon import Beacon
from herald_common.config import Settings
from herald_common.tokens import TokenVerifier

log = logging.getLogger(__name__)

BEARER = "BearerToken"


def cors_config(settings: Settings) -> CORSConfig | None:
    """CORS for the origins in HERALD_CORS_ORIGINS; None (no CORS headers at all) when empty.

    Tokens travel in the Authorization header, never in cookies, so credentials are not
    allowed; preflights are answered before routing, so they need no token.
    """
    if not settings.cors_origins:
        return None
    return CORSConfig(
        allow_origins=list(settings.cors_origins),
        allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
        allow_headers=["Authorization", "Content-Type", "Traceparent", "Tracestate"],
        allow_credentials=False,
        max_age=600,
    )


def create_app(settings: Settings, *, fast_paths: bool = True) -> Litestar:
    """The api application. Its lifespan migrates the database, then starts the NATS link,
    the outbox relay and the membership responder; it stops them on shutdown.

    Serve it through :func:`herald_api.fastpath.producer_routes`; with ``fast_paths=False``
    that serves the producer routes through litestar's handlers too (the tests check that
    both answer alike).
    """
    storage = SqlStorage(create_engine(settings))
    link = NatsLink(settings)
    writes = GroupCommit(storage)
    relay = OutboxRelay(storage, link, writes)
    direct = DirectPublisher(link, relay)
    responder = MembershipResponder(storage)
    link.add_connected_hook(responder.subscribe)
    link.add_reconnected_hook(relay.wake)
    table = NodeTable(settings.node_timeout)
    link.add_connected_hook(NodeWatcher(table).subscribe)

    async def storage_answers() -> dict[str, Any]:
        try:
            await storage.ping()
        except Exception:
            return {"storage": False}
        return {"storage": True}

    beacon = Beacon("api", settings.node_heartbeat, storage_answers)
    link.add_connected_hook(beacon.attach)

    @asynccontextmanager
    async def lifespan(_: Litestar) -> AsyncIterator[None]:
        applied = await storage.migrate()
        if applied:
            log.info("database migrated", extra={"versions": ",".join(map(str, applied))})
        link.start()
        relay.start()
        writes.start()
        direct.start()
        try:
            yield
        finally:
            await beacon.close()
            await direct.close()
            await relay.close()
            await writes.close()
            await link.close()
            await storage.close()

    api = Router(
        path="/api",
        route_handlers=[MessageController, ChannelController, PublishController, TopicController, OperatorController],
        # Authentication first: a request without a valid token is 401, not 429.
        guards=[require_token, write_rate_limit],
        dependencies={"claims": Provide(provide_claims)},
        security=[{BEARER: []}],
    )
    state = State(
        {
            "settings": settings,
            "storage": storage,
            "nats": link,
            "relay": relay,
            "verifier": TokenVerifier(settings),
            "verified_tokens": VerifiedTokens(leeway=settings.jwt_leeway),
            "rate_limiter": RateLimiter(settings.api_post_rate, settings.api_post_burst),
            "publisher_rate_limiter": RateLimiter(settings.api_publisher_post_rate, settings.api_publisher_post_burst),
            "metrics": ApiMetrics(),
            "message_service": MessageService(storage, writes, relay.wake, settings.page_limit_max),
            "channel_service": ChannelService(storage, relay.wake),
            "publish_service": PublishService(writes, relay.wake, direct),
            "direct_publisher": direct,
            "fast_paths": fast_paths,
            "topic_service": TopicService(
                storage, TopicHistory(link), settings.page_limit_max, TopicPresenceReader(link)
            ),
            "operator_service": OperatorService(table, link, settings.operator_timeout, lambda: beacon.id),
        }
    )
    return Litestar(
        route_handlers=[SystemController, api, console_router],
        lifespan=[lifespan],
        state=state,
        exception_handlers=EXCEPTION_HANDLERS,
        # Tracing outermost, so the request span is current in everything else.
        middleware=[tracing_middleware, metrics_middleware],
        request_max_body_size=settings.max_body_bytes,
        request_class=HeraldRequest,
        before_send=[add_security_headers],
        cors_config=cors_config(settings),
        # Herald's JSON logging (set up by run_service) stays in charge of the root logger.
        logging_config=None,
        openapi_config=OpenAPIConfig(
            title="Herald api",
            version="0.1.0",
            description='REST for producers and apps. Errors are `{"code", "message"}`.',
            path="/schema",
            # The browsable docs come from the api itself, never from a CDN.
            render_plugins=[SelfHostedSwagger("/schema"), JsonRenderPlugin(), YamlRenderPlugin()],
            components=Components(
                security_schemes={BEARER: SecurityScheme(type="http", scheme="bearer", bearer_format="JWT")}
            ),
        ),
    )
