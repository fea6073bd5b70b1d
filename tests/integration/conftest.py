from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.stack import Stack, running_stack


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """api, bridge and two gateways against one real nats-server, shared by a test module."""
    with running_stack(Path(tmp_path_factory.mktemp("stack")), gateways=2) as s:
        yield s
