"""Arbiter on a three-node NATS cluster: one node dies mid-stream and comes back, nothing is lost.

Three nats-server processes from the wheel form a JetStream cluster; the streams have three
replicas. ``arbiter ingest`` and ``arbiter project`` run as processes given all three URLs, and
the project's :class:`Publisher` (also given all three, with no retry loop around it: it must
ride out the node loss itself) streams battles in. The node leading the ``ARBITER`` stream is
SIGKILLed while events flow, publishing goes on with two nodes, and the node is started again
on its store. In the end every published event is in the stream once and in the log once, and
the incremental read models = a rebuild from the log = the audit's replay.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from arbiter.adapters.bus import INGEST_DURABLE, STREAM, Publisher, connect
from arbiter.adapters.eventstore import EventLog
from arbiter.projections import PROJECTIONS
from arbiter.services.processes.audit import verify
from arbiter.services.processes.paging import replay
from arbiter.services.processes.rebuild import rebuild
from nats.js.errors import NotFoundError

from .helpers import battle
from .nats_cluster import LocalCluster
from .test_faults import _all_rows, _caught_up, _service, _services, _stored, _until

NAMES = [f"m{i}" for i in range(10)]
BATCH = 50


class PacedFeed:
    """Publishes battles in batches of :data:`BATCH` from a thread, up to :attr:`limit` (which
    the test raises), through one :class:`Publisher`; ``published`` counts acknowledged ones."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.limit = 0
        self.published = 0
        self.resent = 0
        self.failure: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    def __enter__(self) -> PacedFeed:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(60)
        assert not self._thread.is_alive(), "the publisher did not stop"

    @staticmethod
    def event(i: int) -> dict[str, Any]:
        return battle(
            f"c{i}", NAMES[i % 10], NAMES[(i * 3 + 1) % 10], "ab"[i % 2] if i % 7 else "tie"
        )

    async def _run(self) -> None:
        try:
            async with Publisher(self.url) as pub:
                while not self._stop.is_set():
                    if self.published >= self.limit:
                        await asyncio.sleep(0.01)
                        continue
                    n = min(BATCH, self.limit - self.published)
                    await pub.publish(
                        [self.event(self.published + j) for j in range(n)], timeout=60
                    )
                    self.published += n
                    self.resent = pub.resent
                    await asyncio.sleep(0.02)  # a stream, not one burst: the kill lands in it
        except BaseException as exc:
            self.failure = exc

    def publish_up_to(self, limit: int) -> None:
        self.limit = limit

    def wait_for(self, n: int, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while self.published < n:
            assert self.failure is None, f"the publisher failed: {self.failure!r}"
            assert time.monotonic() < deadline, f"only {self.published} of {n} published"
            time.sleep(0.01)


@pytest.fixture
def cluster() -> Iterator[LocalCluster]:
    home = Path(tempfile.mkdtemp(prefix="arbiter-cluster-"))
    nodes = LocalCluster(home)
    try:
        nodes.start(replicas=1)  # as a single server made them: the ingest scales them up
        yield nodes
    finally:
        nodes.stop()
        shutil.rmtree(home, ignore_errors=True)


async def _stream(url: str) -> Any:
    nc = await connect(url, name="cluster-check")
    try:
        return await nc.jetstream(timeout=5).stream_info(STREAM)
    finally:
        await nc.close()


def _stream_info(url: str) -> Any:
    return asyncio.run(_stream(url))


async def _consumer(url: str) -> Any:
    nc = await connect(url, name="cluster-check")
    try:
        return await nc.jetstream(timeout=5).consumer_info(STREAM, INGEST_DURABLE)
    finally:
        await nc.close()


def _consumer_peers(url: str) -> int:
    """How many other nodes hold the ingest's durable consumer, current and online."""
    try:
        cluster = asyncio.run(_consumer(url)).cluster
    except NotFoundError:
        return 0  # the ingest has not made it yet
    peers = (cluster.replicas if cluster else None) or []
    return sum(1 for p in peers if p.current and not p.offline)


def _replicas_current(url: str, total: int) -> bool:
    info = _stream_info(url)
    if info.cluster is None:  # not placed yet
        return False
    peers = info.cluster.replicas or []
    return (
        info.config.num_replicas == 3
        and info.state.messages == total
        and info.cluster.leader is not None
        and len(peers) == 2
        and all(p.current and not p.offline for p in peers)
    )


def test_a_node_dies_mid_stream_and_comes_back(cluster: LocalCluster, database_url: str) -> None:
    url, total = cluster.url, 3000
    assert _stream_info(url).config.num_replicas == 1
    env = {"ARBITER_STREAM_REPLICAS": "3"}
    with (
        _services(
            _service("ingest", database_url, url, **env), _service("project", database_url, url)
        ) as procs,
        PacedFeed(url) as feed,
    ):
        # The ingest, started with ARBITER_STREAM_REPLICAS=3, updated the stream to 3 replicas.
        _until("the stream on three nodes", lambda: _replicas_current(url, 0), 60)
        _until("the ingest's consumer on three nodes", lambda: _consumer_peers(url) == 2, 60)
        victim = cluster.node(_stream_info(url).cluster.leader)
        feed.publish_up_to(2000)
        feed.wait_for(600)
        victim.kill()  # the ARBITER stream's leader, while batches are in flight
        killed_at = feed.published
        assert killed_at < 2000, "the feed finished before the kill: nothing was in flight"
        feed.wait_for(2000)  # with one node down: a new leader took over
        assert victim.start() is not None
        feed.publish_up_to(total)
        feed.wait_for(total)
        _until("the restarted node caught up", lambda: _replicas_current(url, total), 60)
        ids = {PacedFeed.event(i)["event_id"] for i in range(total)}
        _until("every event stored", lambda: _stored(database_url) >= ids, 60)
        _until("both projections at the head of the log", lambda: _caught_up(database_url), 60)
        assert all(p.poll() is None for p in procs), "a service died with the node"

    assert _stored(database_url) == ids
    with EventLog(database_url) as log:
        in_log = Counter(e.event_id for _, e in replay(log, log.store.head()))
    assert set(in_log) == ids and max(in_log.values()) == 1  # stored exactly once
    assert _stream_info(url).state.messages == total  # and once in the stream too

    report = verify(database_url)
    assert report.ok, report.mismatches[:20]
    incremental = _all_rows(database_url)
    for spec in PROJECTIONS.values():
        rebuild(database_url, spec)
    assert _all_rows(database_url) == incremental
    assert verify(database_url).digest == report.digest
    print(f"killed {victim.server_name} after {killed_at} events; {feed.resent} resent")
