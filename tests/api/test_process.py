"""The api as a real process: serves, becomes ready with NATS, exits 0 on SIGTERM."""

from __future__ import annotations

import contextlib
import http.client
import json
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from herald_common.tokens import issue_token
from tests.support.procs import clean_env, free_port, wait_http_ok

pytestmark = pytest.mark.integration


SECRET = "process-test-secret-of-at-least-32-bytes"


def _api_env(tmp_path: Path, port: int, nats_url: str, **extra: str) -> dict[str, str]:
    """The environment of an api process on ``port`` (data in tmp_path), plus ``extra``."""
    base = {
        "HERALD_API_PORT": str(port),
        "HERALD_NATS_URL": nats_url,
        "HERALD_DATA_DIR": str(tmp_path / "data"),
        "HERALD_JWT_SECRET": SECRET,
    }
    return clean_env(base | extra)


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_api_process_serves_and_stops_cleanly(tmp_path: Path, nats_url: str, sig: signal.Signals) -> None:
    port = free_port()
    env = _api_env(tmp_path, port, nats_url)
    log = (tmp_path / "api.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "herald_api"], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_http_ok(base + "/healthz", proc=proc)
        wait_http_ok(base + "/readyz", proc=proc)
        assert _status(base + "/api/messages") == 401
        assert (tmp_path / "data" / "herald.db").exists()
        proc.send_signal(sig)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
    output = (tmp_path / "api.log").read_text()
    assert "Traceback" not in output, output


def test_bad_configuration_exits_2(tmp_path: Path) -> None:
    env = clean_env({"HERALD_API_PORT": "not-a-port", "HERALD_DATA_DIR": str(tmp_path)})
    result = subprocess.run([sys.executable, "-m", "herald_api"], env=env, capture_output=True, timeout=30)
    assert result.returncode == 2
    assert b"HERALD_API_PORT" in result.stderr


def _exchange(port: int, head: bytes, *, then: bytes = b"", timeout: float = 10.0) -> bytes:
    """Send ``head`` (and ``then``) on a fresh connection; everything the api answers until it closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        # The api may close while we are still sending: its answer is already on its way.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(head + then)
        chunks = []
        with contextlib.suppress(ConnectionResetError):
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks)


def _request(header_bytes: int) -> bytes:
    return b"GET /api/messages HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Pad: " + b"a" * header_bytes + b"\r\n\r\n"


def test_request_heads_past_the_limit_are_431_and_preflights_need_no_token(tmp_path: Path, nats_url: str) -> None:
    port = free_port()
    env = _api_env(tmp_path, port, nats_url, HERALD_CORS_ORIGINS="https://app.example.com")
    log = (tmp_path / "api.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "herald_api"], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_http_ok(f"http://127.0.0.1:{port}/healthz", proc=proc)
        # Under the default 16 KiB the request is served (401: it carries no token).
        assert _exchange(port, _request(15_000)).startswith(b"HTTP/1.1 401")
        for size in (17_000, 1_000_000):
            answer = _exchange(port, _request(size))
            assert answer.startswith(b"HTTP/1.1 431"), answer[:100]
            assert answer.endswith(b'{"code":"too_large","message":"request headers exceed 16384 bytes"}')
        # A header that never ends is cut off too, without waiting for its end.
        endless = b"GET / HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 200_000
        assert _exchange(port, endless).startswith(b"HTTP/1.1 431")
        # Many small headers count as much as one large one.
        many = b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X-A: bbbbbbbbbbbbbbbb\r\n" * 1000 + b"\r\n"
        assert _exchange(port, many).startswith(b"HTTP/1.1 431")
        # The count starts again with each request on a kept-alive connection.
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            for _ in range(5):
                conn.request("GET", "/healthz", headers={"X-Pad": "a" * 10_000})
                response = conn.getresponse()
                response.read()
                assert response.status == 200
        finally:
            conn.close()
        # A browser's preflight, as a browser sends it: answered without a token.
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            conn.request(
                "OPTIONS",
                "/api/publish",
                headers={
                    "Origin": "https://app.example.com",
                    "Access-Control-Request-Method": "POST",
                    "Access-Control-Request-Headers": "authorization, content-type",
                },
            )
            response = conn.getresponse()
            response.read()
            assert response.status == 204
            assert response.getheader("access-control-allow-origin") == "https://app.example.com"
            assert "POST" in (response.getheader("access-control-allow-methods") or "")
        finally:
            conn.close()
        # The process is fine afterwards.
        assert _status(f"http://127.0.0.1:{port}/healthz") == 200
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()
    output = (tmp_path / "api.log").read_text()
    assert "Traceback" not in output, output


PUBLISHES = 'herald_api_requests_total{method="POST",route="/api/publish",status="202"} '


def _publishes_answered(base: str) -> int:
    """The accepted publishes counted by the worker that answers this scrape."""
    with urllib.request.urlopen(base + "/metrics", timeout=5) as response:
        for line in response.read().decode().splitlines():
            if line.startswith(PUBLISHES):
                return int(float(line.removeprefix(PUBLISHES)))
    return 0


def _children(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return [int(p) for p in f.read().split()]


def test_api_workers_share_the_port_and_stop_together(tmp_path: Path, nats_url: str) -> None:
    """HERALD_API_WORKERS=2: two api processes on one port (SO_REUSEPORT), both serving
    publishes; SIGTERM stops both and the supervisor exits 0."""
    port = free_port()
    env = _api_env(tmp_path, port, nats_url, HERALD_API_WORKERS="2")
    log = (tmp_path / "api.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "herald_api"], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_http_ok(base + "/readyz", proc=proc)
        workers = _children(proc.pid)
        assert len(workers) == 2
        for pid in workers:
            assert Path(f"/proc/{pid}").exists()
        token = issue_token(SECRET, "app", roles=["publisher"])
        for n in range(40):
            request = urllib.request.Request(
                base + "/api/publish",
                data=json.dumps({"topic": "workers.t", "data": n}).encode(),
                headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            )
            with urllib.request.urlopen(request, timeout=5) as response:
                assert response.status == 202
        # Each worker answers /metrics for itself (new connections land on either): both
        # served publishes, and their counts add up to all of them.
        seen = {_publishes_answered(base) for _ in range(40)}
        assert len(seen) == 2, seen
        assert sum(seen) == 40
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
        for pid in workers:
            assert not Path(f"/proc/{pid}").exists() or Path(f"/proc/{pid}/status").read_text().find("zombie") >= 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
    output = (tmp_path / "api.log").read_text()
    assert "Traceback" not in output, output
