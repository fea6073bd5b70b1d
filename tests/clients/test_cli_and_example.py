"""``python -m herald_client tail`` and examples/python_consumer.py, run as processes against real services."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from queue import Empty, Queue

import pytest

from tests.clients.support import start_gateway
from tests.support.procs import Service, clean_env, free_port
from tests.support.stack import SECRET, Stack, token

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
TAIL = [sys.executable, "-m", "herald_client", "tail"]
EXAMPLE = [sys.executable, str(ROOT / "examples" / "python_consumer.py")]


@contextmanager
def gateway(stack: Stack) -> Iterator[str]:
    port, metrics = free_port(), free_port()
    service: Service = start_gateway(stack, port, metrics)
    try:
        yield f"ws://127.0.0.1:{port}/ws"
    finally:
        service.stop()


def lines(stream: object) -> Queue[str]:
    queue: Queue[str] = Queue()

    def pump() -> None:
        for line in stream:  # type: ignore[attr-defined]
            queue.put(line.rstrip("\n"))

    threading.Thread(target=pump, daemon=True).start()
    return queue


def wait_line(queue: Queue[str], needle: str, timeout: float = 15.0) -> list[str]:
    seen: list[str] = []
    while True:
        try:
            line = queue.get(timeout=timeout)
        except Empty:
            raise AssertionError(f"no line with {needle!r}; saw {seen}") from None
        seen.append(line)
        if needle in line:
            return seen


def publish(stack: Stack, topic: str, data: object) -> None:
    resp = stack.post("/api/publish", {"topic": topic, "data": data}, token("sdk-cli-publisher", "publisher"))
    assert resp.status_code == 202, resp.text


def test_tail_prints_each_message_as_one_json_line(stack: Stack) -> None:
    with gateway(stack) as url:
        tok = token("sdk-tail", topics=["tail.**"])
        proc = subprocess.Popen(
            [*TAIL, "tail.*", "--token", tok, "--url", url, "--count", "3"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=clean_env({}),
        )
        try:
            assert proc.stderr is not None and proc.stdout is not None
            wait_line(lines(proc.stderr), "# subscribed tail.*")
            for i in range(3):
                publish(stack, "tail.x", {"n": i})
            out, _ = proc.communicate(timeout=15)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert proc.returncode == 0
        printed = [json.loads(line) for line in out.splitlines()]
        assert [(p["topic"], p["data"]) for p in printed] == [("tail.x", {"n": i}) for i in range(3)]
        assert all(
            isinstance(p["offset"], int) and p["epoch"] and p["publisher"] == "sdk-cli-publisher" for p in printed
        )
        offsets = [p["offset"] for p in printed]
        # --since resumes after a printed position: only what came after it (and no gap on stderr).
        since = f"{offsets[0]}:{printed[0]['epoch']}"
        again = subprocess.run(
            [*TAIL, "tail.*", "--token", tok, "--url", url, "--since", since, "--count", "2"],
            capture_output=True,
            text=True,
            timeout=15,
            env=clean_env({}),
        )
        assert again.returncode == 0, again.stderr
        assert '"gap"' not in again.stderr
        assert [json.loads(line)["offset"] for line in again.stdout.splitlines()] == offsets[1:]


def test_tail_without_a_token_says_so() -> None:
    result = subprocess.run([*TAIL, "a.b"], capture_output=True, text=True, env=clean_env({}))
    assert result.returncode == 2 and "token" in result.stderr


def test_the_example_consumer_runs(stack: Stack) -> None:
    with gateway(stack) as url:
        proc = subprocess.Popen(
            [*EXAMPLE, "--url", url, "--user", "sdk-example", "--topic", "example.**", "--count", "2"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=clean_env({"HERALD_JWT_SECRET": SECRET}),
        )
        try:
            assert proc.stderr is not None
            wait_line(lines(proc.stderr), "[subscribed to messages.user.sdk-example, example.**]")
            publish(stack, "example.news", {"headline": "hello"})
            publish(stack, "example.news", {"headline": "again"})
            out, _ = proc.communicate(timeout=15)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert proc.returncode == 0
        shown = out.splitlines()
        assert len(shown) == 2 and "example.news" in shown[0] and "'headline': 'hello'" in shown[0]
        assert "'headline': 'again'" in shown[1]
