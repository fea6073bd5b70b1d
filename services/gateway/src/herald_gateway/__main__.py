"""``herald gateway`` and ``python -m herald_gateway``: run one gateway process."""

from __future__ import annotations

import sys

from herald_common.runtime import run_service
from herald_gateway.server import run


def main() -> int:
    """Run the gateway until SIGTERM/SIGINT; returns the process exit code."""
    return run_service("gateway", run)


if __name__ == "__main__":
    sys.exit(main())
