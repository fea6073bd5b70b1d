from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.procs import running_nats
from tests.support.stack import Stack


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """api, bridge and two gateways against one real nats-server, shared by a test module."""
    with running_nats() as nats:
        s = Stack(nats=nats, root=Path(tmp_path_factory.mktemp("stack")))
        try:
            s.start_api()
            s.start_bridge()
            s.start_gateway()
            s.start_gateway()
            yield s
        except BaseException:
            print(s.logs())
            raise
        finally:
            s.stop()
