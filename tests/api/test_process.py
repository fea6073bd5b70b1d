"""The api as a real process: serves, becomes ready with NATS, exits 0 on SIGTERM."""

from __future__ import annotations

import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.support.procs import clean_env, free_port, wait_http_ok

pytestmark = pytest.mark.integration


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_api_process_serves_and_stops_cleanly(tmp_path: Path, nats_url: str, sig: signal.Signals) -> None:
    port = free_port()
    env = clean_env(
        {
            "HERALD_API_PORT": str(port),
            "HERALD_NATS_URL": nats_url,
            "HERALD_DATA_DIR": str(tmp_path / "data"),
            "HERALD_JWT_SECRET": "process-test-secret-of-at-least-32-bytes",
        }
    )
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
