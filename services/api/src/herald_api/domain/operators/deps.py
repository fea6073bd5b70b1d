"""Dependencies of the operator controller."""

from __future__ import annotations

from litestar.datastructures import State

from herald_api.domain.operators.services import OperatorService


def provide_operator_service(state: State) -> OperatorService:
    service: OperatorService = state.operator_service
    return service
