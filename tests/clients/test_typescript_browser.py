"""The browser bundle in a real Chromium: examples/chat.html against the real stack."""

from __future__ import annotations

import functools
import re
import shutil
import threading
import uuid
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.clients.conftest import SDK, run_script, stack_env, unavailable
from tests.support.stack import Stack

pytestmark = pytest.mark.integration

REPO = SDK.parents[1]


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def chromium() -> str:
    found = shutil.which("chromium")
    if found is None:
        unavailable("browser SDK NOT TESTED: no chromium on PATH (.ci/run installs Debian's)")
    assert found is not None
    if not (SDK / "node_modules" / "playwright-core").exists():
        unavailable("browser SDK NOT TESTED: playwright-core is not installed (`make test` installs it)")
    return found


@pytest.fixture
def site() -> Iterator[str]:
    """The repository over http on 127.0.0.1 (Chromium lets such a page reach the loopback gateway)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(REPO)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_chat_page_in_chromium(node: str, chromium: str, site: str, stack: Stack) -> None:
    env = stack_env(stack, TOPIC_PREFIX=f"br{uuid.uuid4().hex[:8]}", CHROMIUM=chromium, PAGE_BASE=site)
    run = run_script(node, "stack/browser.mjs", env, timeout=100)
    assert run.returncode == 0, run.stderr
    result = run.last("result")
    assert "Chrome/" in result["userAgent"]
    assert "Client" in result["sdk"] and "SubscriptionState" in result["sdk"]
    texts = [item["text"] for item in result["items"]]
    assert texts == ["over REST 1", "over REST 2", "over REST 3", "hello from Chromium"], result["items"]
    # the page's own publish came back with the publisher's sub and the offset it was stored at
    stored = re.fullmatch(r"stored at offset (\d+)", result["sent"])
    assert stored is not None, result["sent"]
    assert result["items"][3]["meta"] == f"browser-user #{stored.group(1)}"
    assert result["status"] == "connected"
    assert result["pageErrors"] == []
    assert Path(result["screenshot"]).stat().st_size > 10_000
