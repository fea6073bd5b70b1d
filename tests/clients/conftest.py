"""The TypeScript SDK against real processes: Node scripts from clients/typescript/test, and Chromium.

Node and a built SDK (``make test`` builds it) are needed; Chromium only for the browser
test. Without them the tests are skipped with the reason on a developer's machine and
fail under ``CI=true`` (``.ci/run`` installs Chromium), like the PostgreSQL cases.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.postgres import in_ci
from tests.support.procs import running_nats, wait_for_port, wait_http_ok
from tests.support.stack import SECRET, Gateway, Stack

SDK = Path(__file__).resolve().parents[2] / "clients" / "typescript"


def unavailable(reason: str) -> None:
    """Skip locally, fail in CI: CI must never go green without these tests."""
    if in_ci():
        pytest.fail(f"{reason} (CI=true: not skipping)")
    pytest.skip(reason)


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
    with running_nats() as nats:
        s = Stack(nats=nats, root=Path(tmp_path_factory.mktemp("ts-stack")))
        try:
            s.start_api()
            s.start_bridge()
            s.start_gateway()
            yield s
        except BaseException:
            print(s.logs())
            raise
        finally:
            s.stop()


def restart_gateway(gw: Gateway) -> None:
    """Start the same gateway again, on the same ports, and wait until it is ready."""
    gw.service.start()
    wait_http_ok(f"http://127.0.0.1:{gw.metrics_port}/readyz", proc=gw.service.proc)
    wait_for_port(gw.port, proc=gw.service.proc)


def stack_env(stack: Stack, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "HERALD_TEST_WS": stack.gateways[0].url,
        "HERALD_TEST_API": stack.api_url,
        "HERALD_TEST_SECRET": SECRET,
        **extra,
    }


@dataclass
class Run:
    """What a Node script printed: its JSON events, and how it ended."""

    events: list[dict[str, Any]]
    returncode: int
    stderr: str

    def last(self, event: str) -> dict[str, Any]:
        found = [e for e in self.events if e.get("event") == event]
        assert found, f"no {event!r} event; got {self.events}; stderr:\n{self.stderr}"
        print(json.dumps(found[-1]))  # shown when the test fails
        return found[-1]


def run_script(
    node: str,
    script: str,
    env: dict[str, str],
    on_ready: Callable[[], None] | None = None,
    timeout: float = 90.0,
) -> Run:
    """Run ``clients/typescript/test/<script>``; when it prints ``ready``, call ``on_ready`` and
    write ``go`` to its stdin."""
    proc = subprocess.Popen(
        [node, str(SDK / "test" / script)],
        cwd=SDK,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdin is not None
    events: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    try:
        for line in proc.stdout:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{script} ran over {timeout}s")
            line = line.strip()
            if not line.startswith("{"):
                continue
            event = json.loads(line)
            events.append(event)
            if event.get("event") == "ready" and on_ready is not None:
                on_ready()
                proc.stdin.write("go\n")
                proc.stdin.flush()
        proc.wait(max(1.0, deadline - time.monotonic()))
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
    stderr = proc.stderr.read() if proc.stderr is not None else ""
    return Run(events, proc.returncode, stderr)
