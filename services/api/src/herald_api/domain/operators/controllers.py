"""``/api/nodes``, ``/api/topics`` and ``/api/users/{userId}/...``: what operators look at and do."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, get, post
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, QueryParameter

from herald_api.domain.operators.deps import provide_operator_service
from herald_api.domain.operators.guards import require_admin
from herald_api.domain.operators.schemas import Disconnected, NodeList, TopicList, UserConnections
from herald_api.domain.operators.services import MAX_PAGE, OperatorService
from herald_api.openapi import error_responses


class OperatorController(Controller):
    tags = ["operators"]  # noqa: RUF012 - litestar reads it as a class attribute
    guards = [require_admin]  # noqa: RUF012
    dependencies = {"operators": Provide(provide_operator_service, sync_to_thread=False)}  # noqa: RUF012

    @get("/nodes", summary="Every live process: gateways, api processes, bridges", responses=error_responses(401, 403))
    async def nodes(self, operators: NamedDependency[OperatorService]) -> NodeList:
        """Each process heard from over NATS within HERALD_NODE_TIMEOUT seconds (their heartbeats
        come every HERALD_NODE_HEARTBEAT seconds): uptime, version, NATS server, and for gateways
        their connections, subscriptions and deliveries per second; bridges say whether they are
        the active one or a standby. A process that stops cleanly is left out at once; one that
        crashed within HERALD_NODE_TIMEOUT seconds. Needs the `admin` role.
        """
        return operators.nodes()

    @get(
        "/topics",
        summary="Topics and patterns held by sockets on any gateway",
        responses=error_responses(401, 403, 503),
    )
    async def topics(
        self,
        operators: NamedDependency[OperatorService],
        search: Annotated[str, QueryParameter(max_length=255, description="Only names containing this text.")] = "",
        after: Annotated[str, QueryParameter(max_length=255, description="`nextAfter` of the previous page.")] = "",
        limit: Annotated[int | None, QueryParameter(ge=1, le=MAX_PAGE, description="Page size (50).")] = None,
    ) -> TopicList:
        """Every topic and pattern some socket subscribes to, sorted by name, with the sockets
        holding it (summed over the gateways) and, for topics, the offset of the last stored
        message. Gathered from every gateway over NATS; `missingGateways` lists those that did
        not answer within HERALD_OPERATOR_TIMEOUT. Needs the `admin` role.
        """
        return await operators.topics(search, after, limit)

    @get(
        "/users/{user_id:str}/connections",
        summary="A user's sockets on every gateway",
        responses=error_responses(401, 403, 503),
    )
    async def connections(self, user_id: FromPath[str], operators: NamedDependency[OperatorService]) -> UserConnections:
        """The authenticated sockets of one user (`sub`) on every gateway, with their
        subscriptions. Needs the `admin` role."""
        return await operators.connections(user_id)

    @post(
        "/users/{user_id:str}/disconnect",
        summary="Close a user's sockets on every gateway with 4003",
        status_code=200,
        responses=error_responses(401, 403, 503),
    )
    async def disconnect(self, user_id: FromPath[str], operators: NamedDependency[OperatorService]) -> Disconnected:
        """Every gateway closes the user's sockets with 4003 (disconnected by an operator:
        clients do not reconnect by themselves). The user may connect again with a valid token;
        revoke it at the issuer to keep them out. Needs the `admin` role.
        """
        return await operators.disconnect(user_id)
