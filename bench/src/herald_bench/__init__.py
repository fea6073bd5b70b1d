"""Herald's fan-out benchmark: a gateway against nats-server's own WebSocket listener."""

from herald_bench.cli import main

__all__ = ["main"]
