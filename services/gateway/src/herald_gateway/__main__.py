"""``herald gateway`` and ``python -m herald_gateway``: run the gateway.

With ``HERALD_GATEWAY_WORKERS=N`` (N > 1) this process supervises N gateway processes
that share the WebSocket port with ``SO_REUSEPORT`` (the kernel spreads new connections
over them); worker ``i`` (from 0) serves its metrics on ``HERALD_GATEWAY_METRICS_PORT +
i``. SIGTERM/SIGINT stops them all; if one exits on its own, the others are stopped too.
"""

from __future__ import annotations

import os
import sys

from herald_common.config import ConfigError, load_settings
from herald_common.runtime import run_service
from herald_common.runtime import supervise as run_supervised
from herald_gateway.service import run


def main() -> int:
    """Run the gateway until SIGTERM/SIGINT; returns the process exit code."""
    try:
        workers = load_settings().gateway_workers
    except ConfigError:
        workers = 1  # run_service reports it
    if workers > 1:
        return supervise(workers)
    return run_service("gateway", run)


def worker_env(index: int, base: dict[str, str]) -> dict[str, str]:
    """The environment of worker ``index``: one process, shared port, its own metrics port."""
    env = dict(base)
    env["HERALD_GATEWAY_WORKERS"] = "1"
    env["HERALD_GATEWAY_REUSE_PORT"] = "true"
    metrics = load_settings(base).gateway_metrics_port
    if metrics:
        env["HERALD_GATEWAY_METRICS_PORT"] = str(metrics + index)
    return env


def supervise(workers: int) -> int:
    env = dict(os.environ)
    return run_supervised("herald_gateway", [worker_env(i, env) for i in range(workers)])


if __name__ == "__main__":
    sys.exit(main())
