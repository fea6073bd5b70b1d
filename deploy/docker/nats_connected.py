"""Exit 0 when this network namespace holds an established TCP connection to a NATS port.

The bridge has no HTTP port, so its container health check and Kubernetes probes run this
script: it reads ``/proc/net/tcp`` and ``/proc/net/tcp6`` (no extra packages, no network
I/O) and looks for a connection whose remote port is one of the ports in
``HERALD_NATS_URL`` (4222 when a URL names none). In a container or pod the namespace is
the service's own, so the connection found is the service's NATS client connection.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from urllib.parse import urlsplit

DEFAULT_NATS_URL = "nats://127.0.0.1:4222"
DEFAULT_PORT = 4222
ESTABLISHED = "01"
TABLES = ("/proc/net/tcp", "/proc/net/tcp6")


def nats_ports(nats_url: str) -> set[int]:
    """The remote ports named by a comma-separated ``HERALD_NATS_URL``."""
    ports = set()
    for url in nats_url.split(","):
        url = url.strip()
        if url:
            ports.add(urlsplit(url if "://" in url else "nats://" + url).port or DEFAULT_PORT)
    return ports


def established_remote_ports(table: str) -> set[int]:
    """Remote ports of ESTABLISHED sockets in the text of a /proc/net/tcp{,6} table."""
    ports = set()
    for line in table.splitlines()[1:]:
        fields = line.split()
        if len(fields) > 3 and fields[3] == ESTABLISHED:
            ports.add(int(fields[2].rsplit(":", 1)[1], 16))
    return ports


def connected(tables: Iterable[str], nats_url: str) -> bool:
    wanted = nats_ports(nats_url)
    return any(established_remote_ports(table) & wanted for table in tables)


def main() -> int:
    tables = []
    for path in TABLES:
        try:
            with open(path, encoding="ascii") as f:
                tables.append(f.read())
        except OSError:
            continue
    if connected(tables, os.environ.get("HERALD_NATS_URL", DEFAULT_NATS_URL)):
        return 0
    print("no established connection to NATS", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
