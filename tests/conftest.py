from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.support.postgres import ENV as POSTGRES_ENV
from tests.support.postgres import PostgresUnavailableError, in_ci, throwaway_postgres
from tests.support.procs import NatsServer, running_nats


@pytest.fixture
def nats_server() -> Iterator[NatsServer]:
    """A fresh real nats-server (JetStream on) for one test."""
    with running_nats() as server:
        yield server


@pytest.fixture
def nats_url(nats_server: NatsServer) -> str:
    return nats_server.url


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A PostgreSQL server for the whole session: ``TEST_POSTGRES_URL``, or a throwaway
    cluster started on first use (see tests/support/postgres.py). Without one, the test is
    skipped on a developer's machine and fails under ``CI=true``."""
    given = os.environ.get(POSTGRES_ENV)
    if given:
        yield given
        return
    try:
        with throwaway_postgres() as url:
            yield url
    except PostgresUnavailableError as exc:
        reason = f"PostgreSQL NOT TESTED: no {POSTGRES_ENV} and no throwaway cluster: {exc}"
        if in_ci():
            pytest.fail(reason)
        pytest.skip(reason)
