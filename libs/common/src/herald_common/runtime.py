"""Running a service: one event loop (uvloop when present), stop on SIGTERM/SIGINT/SIGHUP."""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import errno
import gc
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from herald_common.config import DEV_JWT_SECRET, ConfigError, Settings, load_settings
from herald_common.logs import setup_logging
from herald_common.natsconn import tls_context
from herald_common.telemetry import setup_tracing, shutdown_tracing

log = logging.getLogger("herald")

#: Signals that stop a service cleanly. SIGHUP is the terminal going away: a service run
#: by hand in a terminal that is closed stops as if Ctrl-C had been pressed.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)

#: Set (to "1") by ``herald up`` in its children's environment: the supervisor has already
#: told the developer about the development JWT secret, once, so they do not repeat it.
#: Deliberately outside the ``HERALD_`` prefix, which is reserved for settings.
DEV_SECRET_NOTED_ENV = "HERALDUP_DEV_SECRET_NOTED"

#: Services that sign or verify tokens, so the development secret matters to them.
_USES_JWT_SECRET = frozenset({"api", "gateway"})


#: Seconds between checks that every supervised worker still runs.
SUPERVISE_POLL = 0.2


#: Python's collector thresholds in the services (the default is (700, 10, 10)).
GC_THRESHOLDS = (50_000, 20, 100)


def tune_gc() -> None:
    """Collect cycles far less often than Python's default; call once started.

    A gateway connection keeps a few hundred long-lived objects, and every api request
    allocates dozens of short-lived ones: with the default thresholds a burst of connects
    or requests triggers collections that walk the long-lived objects again and again (in
    the gateway's profile they dominated accepts; in the api they cost ~5 % of a publish).
    Startup objects are moved out of the collector's sight for good.
    """
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def install_stop_signals(stop: asyncio.Event) -> None:
    """Set ``stop`` on SIGTERM, SIGINT or SIGHUP (a second signal still only sets it)."""
    loop = asyncio.get_running_loop()
    for sig in STOP_SIGNALS:
        loop.add_signal_handler(sig, stop.set)


@dataclass(frozen=True)
class Listener:
    """A TCP address a service binds, and the setting that chooses its port."""

    host: str
    port: int
    setting: str


def listeners(service: str, settings: Settings) -> list[Listener]:
    """The TCP listeners ``service`` opens with ``settings`` (a port of 0 is disabled)."""
    wanted = {
        "api": [(settings.api_host, settings.api_port, "HERALD_API_PORT")],
        "gateway": [
            (settings.gateway_host, settings.gateway_port, "HERALD_GATEWAY_PORT"),
            (settings.gateway_host, settings.gateway_metrics_port, "HERALD_GATEWAY_METRICS_PORT"),
        ],
        "bridge": [(settings.bridge_host, settings.bridge_metrics_port, "HERALD_BRIDGE_METRICS_PORT")],
    }.get(service, [])
    # The api's port is never 0 in practice, but 0 means "any free port", not "off": keep it.
    return [Listener(h, p, s) for h, p, s in wanted if p or s == "HERALD_API_PORT"]


def port_taken(host: str, port: int, *, reuse_port: bool = False) -> str | None:
    """Why ``host:port`` cannot be bound now (the OS's words), or None when it can.

    With ``reuse_port`` the probe sets SO_REUSEPORT, so a port already shared by gateway
    workers (which set it too) counts as free.
    """
    if port == 0:
        return None
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port and hasattr(socket, "SO_REUSEPORT"):
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            return exc.strerror or str(exc)
    return None


def busy_listener(service: str, settings: Settings) -> str | None:
    """One line naming the first listener of ``service`` whose port is taken, or None."""
    reuse = (service == "gateway" and settings.gateway_reuse_port) or (service == "api" and settings.api_reuse_port)
    for listener in listeners(service, settings):
        reason = port_taken(listener.host, listener.port, reuse_port=reuse)
        if reason is not None:
            return f"port {listener.host}:{listener.port} ({listener.setting}) is already in use ({reason})"
    return None


PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int) -> Callable[[], None]:
    """A ``preexec_fn``: the child gets SIGTERM when the supervisor dies, however it dies.

    Linux only (prctl); elsewhere children are stopped only by a supervisor still alive to
    do it. If the supervisor died between fork and prctl, the child exits at once.
    """
    name = ctypes.util.find_library("c")
    libc = ctypes.CDLL(name, use_errno=True) if name else None

    def preexec() -> None:
        if libc is None or not sys.platform.startswith("linux"):
            return
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent:
            os._exit(1)

    return preexec


def supervise(module: str, envs: list[dict[str, str]]) -> int:
    """Run ``python -m module`` once per environment in ``envs`` until SIGTERM/SIGINT (passed
    on to every worker) or until one exits on its own (the others are then stopped too).
    Returns the first non-zero exit code of a worker, else 0."""
    stopping = False

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    # preexec_fn is safe here: the supervisor runs no threads.
    parent = os.getpid()
    procs = [
        subprocess.Popen([sys.executable, "-m", module], env=env, preexec_fn=die_with_parent(parent)) for env in envs
    ]
    code = 0
    while not stopping and all(p.poll() is None for p in procs):
        time.sleep(SUPERVISE_POLL)
    for p in procs:
        if p.returncode not in (None, 0):
            code = p.returncode
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        p.wait()
    return code


def run_service(name: str, main: Callable[[Settings, asyncio.Event], Coroutine[Any, Any, None]]) -> int:
    """Load settings, set up logging, run ``main(settings, stop)`` until it returns.

    Returns the process exit code: 0 after a clean stop, 2 for bad configuration, 1 when
    a port it must listen on is taken (said in one line naming the setting).
    """
    try:
        settings = load_settings()
        tls_context(settings)  # a CA, certificate or key that cannot be read is a configuration error
    except ConfigError as exc:
        print(f"herald {name}: configuration error: {exc}", file=sys.stderr)
        return 2
    busy = busy_listener(name, settings)
    if busy is not None:
        print(f"herald {name}: {busy}", file=sys.stderr)
        return 1
    setup_logging(settings.log_level, name)
    try:
        setup_tracing(name)
    except ConfigError as exc:
        print(f"herald {name}: configuration error: {exc}", file=sys.stderr)
        return 2
    if (
        name in _USES_JWT_SECRET
        and settings.jwt_secret == DEV_JWT_SECRET
        and os.environ.get(DEV_SECRET_NOTED_ENV) != "1"
    ):
        log.warning("HERALD_JWT_SECRET is the development default; set it in production")

    async def runner() -> None:
        stop = asyncio.Event()
        install_stop_signals(stop)
        await main(settings, stop)

    try:
        import uvloop

        uvloop.run(runner())
    except ImportError:  # pragma: no cover - uvloop is a dependency on every supported platform
        asyncio.run(runner())
    except OSError as exc:
        # The port was free when checked above and taken since (a race with another process).
        if exc.errno != errno.EADDRINUSE:
            raise
        ports = ", ".join(f"{listener.port} ({listener.setting})" for listener in listeners(name, settings))
        print(f"herald {name}: a port it listens on was taken while starting: {ports}", file=sys.stderr)
        return 1
    finally:
        shutdown_tracing()
    log.info("stopped")
    return 0
