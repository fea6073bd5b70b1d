"""Fixtures of the TypeScript SDK's tests: Node with the SDK built, and a running stack."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.clients.typescript.node import SDK, unavailable
from tests.support.stack import Stack, running_stack


@pytest.fixture(scope="session")
def node() -> str:
    """The ``node`` binary, with the SDK built and its dev dependencies installed."""
    found = shutil.which("node")
    if found is None:
        unavailable("TypeScript SDK NOT TESTED: no node on PATH")
    assert found is not None
    if not (SDK / "dist" / "index.js").exists() or not (SDK / "dist" / "herald.min.js").exists():
        unavailable("TypeScript SDK NOT TESTED: clients/typescript/dist is missing (`make test` builds it)")
    if not (SDK / "node_modules" / "ws").exists():
        unavailable("TypeScript SDK NOT TESTED: clients/typescript/node_modules is missing (`make test` installs it)")
    return found


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """nats-server, api, bridge and one gateway, shared by a test module; each test leaves the gateway up."""
    with running_stack(Path(tmp_path_factory.mktemp("ts-stack")), gateways=1) as s:
        yield s
