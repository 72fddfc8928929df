"""Three nats-server processes from the wheel, clustered with JetStream, for the cluster tests.

Each node is an :class:`EmbeddedNats` (so orphans, logs and readiness work as for the single
server) with its own store, client port and cluster port, and routes to the other two. A node
can be killed (SIGKILL) and started again on the same ports and store.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from arbiter.adapters.bus import connect, ensure_streams
from arbiter.adapters.embedded import EmbeddedNats, find_free_port
from nats.js.errors import APIError

__all__ = ["LocalCluster"]


class LocalCluster:
    """``size`` clustered JetStream nodes under ``home``; :attr:`url` names all of them."""

    def __init__(self, home: Path, size: int = 3, name: str = "arbiter") -> None:
        client_ports = [find_free_port() for _ in range(size)]
        route_ports = [find_free_port() for _ in range(size)]
        routes = [f"nats://127.0.0.1:{p}" for p in route_ports]
        self.nodes = [
            EmbeddedNats(
                home / f"n{i}",
                client_ports[i],
                server_name=f"n{i}",
                extra_args=_cluster_args(name, routes, i),
            )
            for i in range(size)
        ]
        self.url = ",".join(f"nats://127.0.0.1:{p}" for p in client_ports)

    def start(self, replicas: int, timeout: float = 60) -> None:
        """Start every node, then create the Arbiter streams with ``replicas`` replicas once
        the cluster has a JetStream meta leader and enough peers (until then the creation is
        refused, and retried)."""
        for node in self.nodes:
            node.start()
        asyncio.run(self._streams(replicas, timeout))

    async def _streams(self, replicas: int, timeout: float) -> None:
        nc = await connect(self.url, name="cluster-setup")
        try:
            js = nc.jetstream(timeout=2)
            deadline = time.monotonic() + timeout
            while True:
                try:
                    await ensure_streams(js, replicas)
                    return
                except (APIError, TimeoutError) as exc:
                    if time.monotonic() > deadline:
                        raise AssertionError(f"the cluster did not form: {exc}") from exc
                    await asyncio.sleep(0.2)
        finally:
            await nc.close()

    def node(self, server_name: str) -> EmbeddedNats:
        (found,) = [n for n in self.nodes if n.server_name == server_name]
        return found

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


def _cluster_args(name: str, routes: list[str], i: int) -> tuple[str, ...]:
    """Node ``i`` listens for routes on ``routes[i]`` and dials the others."""
    others = ",".join(r for j, r in enumerate(routes) if j != i)
    return ("--cluster_name", name, "--cluster", routes[i], "--routes", others)
