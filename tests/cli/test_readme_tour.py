"""The README's tour, followed literally: its commands run as written (only the ports are
the test's own), against `herald up`, and what it shows is what comes out.

Blocks of the tour, in order: ``sh`` blocks are commands (``.venv/bin/websockets`` opens
the interactive client, kept running); plain blocks of ``>``/``<`` lines are what is typed
into and shown by that client; other plain blocks are the output of the command before.
In shown text ``…`` stands for any value, and the ``eyJ...`` auth frame for the one the
first command printed.
"""

from __future__ import annotations

import json
import queue
import re
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.cli.test_cli import _start_up, _up_env
from tests.support.procs import clean_env

ROOT = Path(__file__).resolve().parents[2]
PLACEHOLDER_AUTH = '{"type":"auth","token":"eyJ..."}'


def tour_blocks(heading: str = "## A 60-second tour") -> list[tuple[str, str]]:
    """(language, text) of every fenced block of the README section under ``heading``."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split(heading + "\n", 1)[1].split("\n## ", 1)[0]
    return [(m.group(1), m.group(2)) for m in re.finditer(r"```(\w*)\n(.*?)```", section, re.DOTALL)]


def commands(block: str) -> list[str]:
    """The commands of a shell block, continuation lines joined."""
    return [c.strip() for c in block.replace("\\\n", " ").splitlines() if c.strip()]


def shown(expected: str, actual: str) -> bool:
    """Whether ``actual`` is the ``expected`` text, with ``…`` matching any value."""
    pattern = ".*?".join(re.escape(part) for part in expected.strip().split("…"))
    return re.fullmatch(pattern, actual.strip()) is not None


class InteractiveClient:
    """The tour's ``websockets`` client, its stdin written and its ``<`` lines collected."""

    def __init__(self, command: str, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            ["bash", "-c", command],
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            # Received frames print as "< frame" behind terminal control sequences.
            if "< " in line:
                self.lines.put(line.split("< ", 1)[1].rstrip("\n"))

    def send(self, text: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(text + "\n")
        self.proc.stdin.flush()

    def receive(self, timeout: float = 10.0) -> str:
        return self.lines.get(timeout=timeout)

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.mark.integration
def test_the_readme_tour_works_as_written(tmp_path: Path) -> None:
    env = _up_env(tmp_path)
    del env["HERALD_JWT_SECRET"]  # `make run` and the tour's `herald token` share the default
    up, banner = _start_up(env)
    ports = {
        "127.0.0.1:8080": f"127.0.0.1:{env['HERALD_GATEWAY_PORT']}",
        "127.0.0.1:8000": f"127.0.0.1:{env['HERALD_API_PORT']}",
    }
    shell_env = clean_env({})
    ws: InteractiveClient | None = None
    try:
        assert "Herald is up." in banner, banner
        printed: list[str] = []  # stdout of every command, in order
        published: list[str] = []  # topics the tour publishes to
        received: list[str] = []  # topics of the messages the tour's socket shows
        blocks = tour_blocks()
        assert [lang for lang, _ in blocks].count("sh") == 3, blocks
        for lang, text in blocks:
            if lang == "sh":
                for command in commands(text):
                    for default, mine in ports.items():
                        command = command.replace(default, mine)
                    if command.startswith(".venv/bin/websockets"):
                        ws = InteractiveClient(command, shell_env)
                        continue
                    result = subprocess.run(
                        ["bash", "-c", command], cwd=ROOT, env=shell_env, capture_output=True, text=True, timeout=30
                    )
                    assert result.returncode == 0, (command, result.stderr)
                    printed.append(result.stdout)
                    if "/api/publish" in command:
                        published.append(json.loads(command.split("-d '", 1)[1].split("'", 1)[0])["topic"])
            elif all(line.startswith(("> ", "< ")) for line in text.strip().splitlines()):
                assert ws is not None, "the tour types into a client before opening one"
                for line in text.strip().splitlines():
                    frame = line[2:]
                    if line.startswith("> "):
                        if frame == PLACEHOLDER_AUTH:
                            frame = printed[0].strip()  # the auth frame the first command printed
                            assert json.loads(frame)["type"] == "auth"
                        ws.send(frame)
                    else:
                        got = ws.receive()
                        assert shown(frame, got), f"README shows {frame}\nthe client shows {got}"
                        if json.loads(got)["type"] == "message":
                            received.append(json.loads(got)["topic"])
            else:
                assert shown(text, printed[-1]), f"README shows {text}\nthe command printed {printed[-1]}"
        time.sleep(0.2)
        assert ws is not None and ws.lines.empty(), "the socket got more than the README shows"
        # What the tour publishes, the tour's socket is shown receiving (a publish nobody
        # subscribed to before shows nothing).
        assert published and set(published) <= set(received), (published, received)
    finally:
        if ws is not None:
            ws.close()
        up.terminate()
        up.wait(30)


@pytest.mark.integration
def test_the_sdk_tour_works_as_written(tmp_path: Path) -> None:
    """The SDK section: ``tail`` running, a publish, and the line the tail prints."""
    env = _up_env(tmp_path)
    del env["HERALD_JWT_SECRET"]
    up, banner = _start_up(env)
    ports = {
        "127.0.0.1:8080": f"127.0.0.1:{env['HERALD_GATEWAY_PORT']}",
        "127.0.0.1:8000": f"127.0.0.1:{env['HERALD_API_PORT']}",
    }
    blocks = tour_blocks("## The tour with the SDK")
    assert [lang for lang, _ in blocks] == ["sh", "sh", ""], blocks
    (tail_command,), (publish_command,) = commands(blocks[0][1]), commands(blocks[1][1])
    for default, mine in ports.items():
        tail_command = tail_command.replace(default, mine)
        publish_command = publish_command.replace(default, mine)
    tail = subprocess.Popen(
        ["bash", "-c", f"exec {tail_command}"],
        cwd=ROOT,
        env=clean_env({}),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert "Herald is up." in banner, banner
        assert tail.stderr is not None and tail.stdout is not None
        notes: list[str] = []
        deadline = time.monotonic() + 20
        while not any(n.startswith("# subscribed news.**") for n in notes):
            assert time.monotonic() < deadline and tail.poll() is None, notes
            notes.append(tail.stderr.readline())
        published = subprocess.run(
            ["bash", "-c", publish_command], cwd=ROOT, env=clean_env({}), capture_output=True, text=True, timeout=30
        )
        assert published.returncode == 0, published.stderr
        assert shown('{"eventId":"…"}', published.stdout), published.stdout
        printed = tail.stdout.readline()
        assert shown(blocks[2][1], printed), f"README shows {blocks[2][1]}\nthe tail printed {printed}"
    finally:
        tail.terminate()
        tail.wait(10)
        up.terminate()
        up.wait(30)
