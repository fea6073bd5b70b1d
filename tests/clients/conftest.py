from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.clients.support import SERVICE_ENV
from tests.support.procs import running_nats
from tests.support.stack import Stack


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """nats-server, api and bridge for a test module; each test starts the gateways it needs."""
    with running_nats() as nats:
        s = Stack(nats=nats, root=Path(tmp_path_factory.mktemp("sdk")))
        try:
            s.start_api(**SERVICE_ENV)
            s.start_bridge()
            yield s
        except BaseException:
            print(s.logs())
            raise
        finally:
            s.stop()
