"""Helpers shared by the test suite: ports, a real nats-server, service processes."""
