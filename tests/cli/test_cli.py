"""The `herald` command as a user runs it: a real process, real ports."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
import websocket

from herald_common.config import load_settings
from herald_common.tokens import TokenVerifier
from tests.support.procs import BIN, clean_env, free_port

HERALD = str(BIN / "herald")


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [HERALD, *args], env=clean_env(env or {}), capture_output=True, text=True, timeout=30, check=False
    )


def test_token_is_verifiable_with_the_same_secret() -> None:
    env = {"HERALD_JWT_SECRET": "s3-0123456789abcdef0123456789abcdef"}
    result = run("token", "alice", "--role", "admin", "--role", "publisher", "--ttl", "60", env=env)
    assert result.returncode == 0, result.stderr
    claims = TokenVerifier(load_settings(env)).verify(result.stdout.strip())
    assert claims.sub == "alice"
    assert claims.roles == {"admin", "publisher"}
    assert 50 < claims.exp - time.time() <= 60


def test_token_rejects_bad_ttl() -> None:
    result = run("token", "alice", "--ttl", "-5")
    assert result.returncode == 2
    assert "--ttl" in result.stderr


def test_unknown_setting_fails_at_start() -> None:
    for command in (["token", "a"], ["up"], ["api"], ["gateway"], ["bridge"]):
        result = run(*command, env={"HERALD_GATEWAY_PROT": "9000"})
        assert result.returncode == 2, (command, result.stderr)
        assert "HERALD_GATEWAY_PROT" in result.stderr


def test_malformed_setting_fails_at_start() -> None:
    result = run("gateway", env={"HERALD_GATEWAY_PORT": "http"})
    assert result.returncode == 2
    assert "HERALD_GATEWAY_PORT='http' is invalid" in result.stderr


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--role", "root"], "unknown role 'root'; valid roles: admin, publisher"),
        (["--role", "admin", "--role", "Admin"], "unknown role 'Admin'"),
        (["--topic", "news..sport"], "--topic: invalid pattern 'news..sport'"),
        (["--topic", "news.**.x"], "'**' is only allowed as the last token"),
        (["--publish", "chat room"], "--publish: invalid pattern 'chat room'"),
    ],
)
def test_token_rejects_unknown_roles_and_bad_patterns(args: list[str], fragment: str) -> None:
    result = run("token", "alice", *args)
    assert result.returncode == 2, result
    assert fragment in result.stderr
    assert result.stdout == ""


def test_token_accepts_valid_grants() -> None:
    result = run("token", "alice", "--topic", "news.**", "--topic", "a.*.c", "--publish", "chat.room-1")
    assert result.returncode == 0, result.stderr


def test_config_reference_prints_the_markdown_table() -> None:
    result = run("config", "--reference")
    assert result.returncode == 0
    assert "`HERALD_GATEWAY_PORT`" in result.stdout


def test_config_prints_the_effective_settings_with_secrets_masked() -> None:
    env = {
        "HERALD_GATEWAY_PORT": "9000",
        "HERALD_JWT_SECRET": "very-secret-value-0123456789abcdef",
        "HERALD_NATS_USER": "api",
        "HERALD_NATS_PASSWORD": "nats-password-value",
        "HERALD_DATABASE_URL": "postgresql://herald:db-password-value@db.internal:5432/herald",
    }
    result = run("config", env=env)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "HERALD_GATEWAY_PORT=9000  # from the environment" in lines
    assert "HERALD_API_PORT=8000" in lines
    assert "HERALD_NATS_USER=api  # from the environment" in lines
    assert "HERALD_NATS_PASSWORD=********  # from the environment" in lines
    assert "HERALD_JWT_SECRET=********  # from the environment" in lines
    assert "HERALD_DATABASE_URL=postgresql://herald:********@db.internal:5432/herald  # from the environment" in lines
    for secret in ("very-secret-value", "nats-password-value", "db-password-value"):
        assert secret not in result.stdout


def test_config_with_a_bad_choice_lists_the_valid_ones() -> None:
    result = run("config", env={"HERALD_LOG_LEVEL": "loud"})
    assert result.returncode == 2
    assert "HERALD_LOG_LEVEL='loud' is invalid" in result.stderr
    assert "valid: debug, info, warning, error" in result.stderr


def _up_env(tmp_path: Path) -> dict[str, str]:
    return {
        "HERALD_NATS_URL": f"nats://127.0.0.1:{free_port()}",
        "HERALD_API_PORT": str(free_port()),
        "HERALD_GATEWAY_PORT": str(free_port()),
        "HERALD_GATEWAY_METRICS_PORT": str(free_port()),
        "HERALD_BRIDGE_METRICS_PORT": str(free_port()),
        "HERALD_DATA_DIR": str(tmp_path / "var"),
        "HERALD_JWT_SECRET": "up-secret-0123456789abcdef0123456789",
    }


def test_up_refuses_a_taken_port(tmp_path: Path) -> None:
    env = _up_env(tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        env["HERALD_API_PORT"] = str(taken.getsockname()[1])
        result = run("up", env=env)
    assert result.returncode == 1
    assert f"herald up: port 127.0.0.1:{env['HERALD_API_PORT']} (HERALD_API_PORT) is already in use" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("service", "setting"),
    [("gateway", "HERALD_GATEWAY_PORT"), ("gateway", "HERALD_GATEWAY_METRICS_PORT"), ("api", "HERALD_API_PORT")],
)
def test_a_service_on_a_taken_port_says_so_in_one_line(tmp_path: Path, service: str, setting: str) -> None:
    env = _up_env(tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        env[setting] = str(taken.getsockname()[1])
        result = run(service, env=env)
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines == [
        f"herald {service}: port 127.0.0.1:{env[setting]} ({setting}) is already in use (Address already in use)"
    ]


@pytest.mark.integration
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_up_starts_everything_and_stops_cleanly(tmp_path: Path, sig: signal.Signals) -> None:
    env = _up_env(tmp_path)
    if sig == signal.SIGINT:
        del env["HERALD_JWT_SECRET"]  # the development secret: warned about once, not by every service
    proc = subprocess.Popen(
        [HERALD, "up"], env=clean_env(env), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        lines: list[str] = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if line.startswith("Ctrl-C"):
                break
        out = "".join(lines)
        assert "Herald is up." in out, out
        ws_url = f"ws://127.0.0.1:{env['HERALD_GATEWAY_PORT']}/ws"
        assert ws_url in out
        dev_token = lines[lines.index("Dev token (sub=dev, roles admin+publisher, 24 h):\n") + 1].strip()

        # The printed token works: the whole path is alive.
        ws = websocket.create_connection(ws_url, timeout=10)
        ws.send(json.dumps({"type": "auth", "token": dev_token}))
        assert json.loads(ws.recv())["type"] == "auth_success"
        ws.send(json.dumps({"type": "subscribe", "topic": "messages"}))
        assert json.loads(ws.recv())["type"] == "subscribed"
        req = urllib.request.Request(
            f"http://127.0.0.1:{env['HERALD_API_PORT']}/api/messages",
            data=json.dumps({"content": "tour", "recipientId": "alice"}).encode(),
            headers={"Authorization": f"Bearer {dev_token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=10) as resp:
            assert resp.status == 201
        frame = json.loads(ws.recv())
        assert frame["type"] == "message"
        assert frame["data"]["content"] == "tour"

        # The console is served, pointing at this gateway, with the SDK bundle (no build step).
        console = f"http://127.0.0.1:{env['HERALD_API_PORT']}/console"
        assert f"console  {console}" in out
        with urllib.request.urlopen(console, timeout=10) as resp:
            assert f'<meta name="herald-gateway" content="{ws_url}">' in resp.read().decode()
        with urllib.request.urlopen(console + "/static/herald.min.js", timeout=10) as resp:
            assert b"Herald" in resp.read()

        proc.send_signal(sig)
        assert proc.wait(30) == 0, proc.stderr.read() if proc.stderr else ""
        assert proc.stderr is not None
        lines_err = [json.loads(line) for line in proc.stderr.read().splitlines() if line.strip()]
        for entry in lines_err:  # every line one JSON shape (nats-server writes its own file)
            assert {"ts", "level", "service", "logger", "msg"} <= set(entry), entry
            assert "weakproxy" not in json.dumps(entry) and "\x1b[" not in json.dumps(entry), entry
        assert {e["service"] for e in lines_err} >= {"up", "api", "bridge", "gateway"}
        assert not [e for e in lines_err if e["msg"] == "nats disconnected"], "a clean stop is no disconnection"
        dev_warnings = [e for e in lines_err if "development default" in e["msg"]]
        assert len(dev_warnings) == (1 if sig == signal.SIGINT else 0), dev_warnings
        assert "Starting nats-server" in (tmp_path / "var" / "nats" / "nats-server.log").read_text()
        ws.settimeout(5)
        opcode, data = ws.recv_data(control_frame=True)
        assert opcode == websocket.ABNF.OPCODE_CLOSE
        assert int.from_bytes(data[:2], "big") == 1001
        assert (tmp_path / "var" / "herald.db").exists() or any((tmp_path / "var").iterdir())
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _children(pid: int) -> list[int]:
    """The pids whose parent is ``pid`` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            # The command name (2nd field) is in parentheses and may hold spaces.
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _start_up(env: dict[str, str]) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [HERALD, "up"], env=clean_env(env), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if line.startswith("Ctrl-C"):
            break
    return proc, "".join(lines)


@pytest.mark.integration
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="children are found through /proc (Linux)")
def test_children_die_with_a_killed_supervisor(tmp_path: Path) -> None:
    env = _up_env(tmp_path)
    proc, out = _start_up(env)
    children: list[int] = []
    try:
        assert "Herald is up." in out, out
        children = _children(proc.pid)
        assert len(children) == 4, children  # nats-server, api, bridge, gateway
        proc.kill()
        proc.wait(10)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and any(_alive(pid) for pid in children):
            time.sleep(0.1)
        assert not [pid for pid in children if _alive(pid)], "children outlived herald up"
        # Every port is free again: the next `make run` can start.
        for name in (
            "HERALD_API_PORT",
            "HERALD_GATEWAY_PORT",
            "HERALD_GATEWAY_METRICS_PORT",
            "HERALD_BRIDGE_METRICS_PORT",
        ):
            with socket.socket() as s:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind(("127.0.0.1", int(env[name])))
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", int(env["HERALD_NATS_URL"].rsplit(":", 1)[1])))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pid in children:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
