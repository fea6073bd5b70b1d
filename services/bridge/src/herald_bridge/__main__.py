"""``herald bridge`` / ``python -m herald_bridge``."""

from __future__ import annotations

import sys

from herald_common.runtime import run_service


def main() -> int:
    from herald_bridge.service import serve

    return run_service("bridge", serve)


if __name__ == "__main__":
    sys.exit(main())
