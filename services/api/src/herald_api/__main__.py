"""``herald api`` / ``python -m herald_api``: run the api until SIGTERM or SIGINT."""

from __future__ import annotations

import sys

from herald_api.server import serve
from herald_common.runtime import run_service


def main() -> int:
    return run_service("api", serve)


if __name__ == "__main__":
    sys.exit(main())
