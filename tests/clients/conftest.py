from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.clients.support import SERVICE_ENV
from tests.support.stack import Stack, running_stack


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """nats-server, api and bridge for a test module; each test starts the gateways it needs."""
    with running_stack(Path(tmp_path_factory.mktemp("sdk")), api_env=SERVICE_ENV) as s:
        yield s
