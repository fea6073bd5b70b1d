"""``herald api`` / ``python -m herald_api``: run the api until SIGTERM or SIGINT.

With ``HERALD_API_WORKERS=N`` (N > 1) this process supervises N api processes that share
the port with ``SO_REUSEPORT`` (the kernel spreads new connections over them), so the api
uses more than one core. Each runs its own outbox relay (they take turns, see
:mod:`herald_api.relay`), its own JetStream writes and its own per-token rate buckets.
SIGTERM/SIGINT stops them all; if one exits on its own, the others are stopped too.
"""

from __future__ import annotations

import os
import sys

from herald_api.server import serve
from herald_common.config import ConfigError, load_settings
from herald_common.runtime import run_service, supervise


def worker_env(base: dict[str, str]) -> dict[str, str]:
    """The environment of one worker: one process, on the shared port."""
    return base | {"HERALD_API_WORKERS": "1", "HERALD_API_REUSE_PORT": "true"}


def main() -> int:
    try:
        workers = load_settings().api_workers
    except ConfigError:
        workers = 1  # run_service reports it
    if workers > 1:
        env = worker_env(dict(os.environ))
        return supervise("herald_api", [env] * workers)
    return run_service("api", serve)


if __name__ == "__main__":
    sys.exit(main())
