"""The SDK against real processes while gateways die or restart under a steady stream.

Messages are numbered per topic in their data; every subscription must end with each
number once, in order: 0 lost, 0 duplicated, 0 reordered.
"""

from __future__ import annotations

import asyncio
import signal

import pytest

from herald_client import Client, ClientState
from tests.clients.support import Collector, account, publish_load, start_gateway, wait_for
from tests.support.procs import Service, free_port
from tests.support.stack import Stack, token

pytestmark = pytest.mark.integration


def stop_gracefully(service: Service) -> None:
    service.signal(signal.SIGTERM)
    assert service.proc is not None
    service.proc.wait(15)


@pytest.mark.parametrize(("how", "code"), [("SIGKILL", 1006), ("SIGTERM", 1001)])
async def test_gateway_dies_mid_stream_and_the_subscriber_misses_nothing(stack: Stack, how: str, code: int) -> None:
    port, metrics = free_port(), free_port()
    gateway = start_gateway(stack, port, metrics)
    prefix = f"restart{how.lower()}"
    client = Client(
        f"ws://127.0.0.1:{port}/ws",
        token=token(f"sdk-{prefix}", topics=[f"{prefix}.**"]),
        reconnect_min=0.1,
        reconnect_max=0.5,
    )
    try:
        await client.connect()
        # Overlapping patterns on one socket: each frame is routed to both; each keeps its own
        # resume state. The narrow one joins mid-stream, so their positions differ.
        wide = Collector(await client.subscribe(f"{prefix}.*")).start()
        load = asyncio.create_task(publish_load(stack, [f"{prefix}.a", f"{prefix}.b"], rate=200, seconds=5))
        await asyncio.sleep(0.7)
        narrow = Collector(await client.subscribe(f"{prefix}.a")).start()
        await asyncio.sleep(0.8)
        if how == "SIGKILL":
            gateway.kill()
        else:
            await asyncio.to_thread(stop_gracefully, gateway)
        await asyncio.sleep(0.3)
        gateway = await asyncio.to_thread(start_gateway, stack, port, metrics)
        expected = await load
        await wait_for([wide], [expected], timeout=20)
        first = narrow.got[f"{prefix}.a"][0]
        assert first > 0  # it joined mid-stream; from there on it must have everything
        narrow_expected = {f"{prefix}.a": [i for i in expected[f"{prefix}.a"] if i >= first]}
        await wait_for([narrow], [narrow_expected], timeout=20)
        assert sum(map(len, expected.values())) >= 600
        assert account(wide.got, expected) == {"lost": 0, "duplicated": 0, "reordered": 0, "foreign": 0}
        assert account(narrow.got, narrow_expected) == {"lost": 0, "duplicated": 0, "reordered": 0, "foreign": 0}
        assert wide.got == expected and dict(narrow.got) == narrow_expected
        assert client.close_codes[:1] == [code], client.close_codes
        assert client.connections >= 2 and client.state is ClientState.CONNECTED
        assert wide.sub.recovered is True and narrow.sub.recovered is True
        assert wide.sub.gaps == [] and narrow.sub.gaps == []
    except BaseException:
        print(gateway.logs()[-3000:])
        raise
    finally:
        await client.close()
        gateway.stop()
