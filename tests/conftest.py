from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.procs import NatsServer, running_nats


@pytest.fixture
def nats_server() -> Iterator[NatsServer]:
    """A fresh real nats-server (JetStream on) for one test."""
    with running_nats() as server:
        yield server


@pytest.fixture
def nats_url(nats_server: NatsServer) -> str:
    return nats_server.url
