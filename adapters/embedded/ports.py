"""A free TCP port: what nats-server listens on when no port is configured, and what the tests
give to the servers they start. Its own room because the tests and ``arbiter up`` need it
without the servers."""

from __future__ import annotations

import socket

__all__ = ["find_free_port"]


def find_free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago on ``host`` (the kernel picks it; racy by nature)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])
