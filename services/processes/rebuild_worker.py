"""The second process of a sharded rebuild: it folds the category pools of the ratings from
what the first process forwards, and stores them in the fresh schema.

Started as ``python -m arbiter.services.processes.rebuild_worker`` by :class:`Worker`, which
lives here too, so that the two ends of the pipe between the processes (the frames, the task,
the end) are read side by side. It imports neither the event store nor the rebuild: it reads
no log, and starts faster without.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from typing import Any, BinaryIO

import msgspec
from arbiter.projections import PROJECTIONS
from arbiter.projections.ratings import Forwarded, Shard
from psycopg import sql

from .paging import collector_paused
from .rebuild_tables import (
    Deferred,
    Pipeline,
    RebuildError,
    create_indexes,
    run_statements,
    sql_text,
)

__all__ = ["FAULT_WORKER", "MODULE", "Worker", "fill_shard"]

FAULT_WORKER = "ARBITER_FAULT_REBUILD_WORKER"
"""Tests set it to make the rebuild worker fail (a real failure path, end to end)."""
MODULE = "arbiter.services.processes.rebuild_worker"
"""What the worker is started as (``python -m``)."""


class Worker:
    """The category shard of a sharded rebuild, in a process of its own, fed by this one.

    It is a fresh interpreter (``python -m`` :data:`MODULE`), not a fork: the caller
    has threads and open connections, and multiprocessing's spawn would re-import the caller's
    main module. Its stdin carries length-prefixed frames: the task (JSON; the database URL
    stays out of ``ps``), then one msgpack :class:`Forwarded` per page of the log, then an
    empty frame for the end; a feeder thread writes them, so the fold never waits on the pipe.
    A failing worker's traceback goes to its stderr, a temporary file, which :meth:`join`
    raises with. If the caller fails, :meth:`__exit__` kills the worker; if it dies, the worker
    reads the end of its stdin without the end frame, and stops without storing more.
    """

    def __init__(self, task: dict[str, Any], deferred: list[Deferred], start: bool) -> None:
        self.start = start
        self.processes = 2 if start else 1
        indexes = create_indexes(task["schema"], deferred, Shard(categories=True).partition)
        self.task = {**task, "indexes": [sql_text(s) for s in indexes]}
        self.proc: subprocess.Popen[bytes] | None = None
        self.errors: Any = None
        self.frames: queue.Queue[bytes | None] = queue.Queue(maxsize=4)
        self.feeder = threading.Thread(target=self._feed, name="rebuild-feeder", daemon=True)
        self.feed_failure: BaseException | None = None
        self.encode = msgspec.msgpack.Encoder().encode

    def __enter__(self) -> Worker:
        if not self.start:
            return self
        self.errors = tempfile.TemporaryFile()
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", MODULE],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=self.errors,
            )
            self.feeder.start()
            self.frames.put(json.dumps(self.task).encode())
        except BaseException:
            self._stop()
            raise
        return self

    def send(self, batch: Forwarded) -> None:
        """Queue one page's forwarded results and voids for the worker."""
        if self.feed_failure is not None:
            self.join()
            raise RebuildError(f"the rebuild worker stopped reading: {self.feed_failure}")
        self.frames.put(self.encode(batch))

    def finish(self) -> None:
        """Send the end frame and wait until the feeder has written everything."""
        if self.proc is None:
            return
        self.frames.put(b"")
        self.frames.put(None)
        self.feeder.join()

    def _feed(self) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        stdin = self.proc.stdin
        try:
            while (frame := self.frames.get()) is not None:
                stdin.write(len(frame).to_bytes(4, "big"))
                stdin.write(frame)
            stdin.close()
        except BaseException as exc:  # the worker died: join() says why
            self.feed_failure = exc
            while self.frames.get() is not None:  # keep the sender from blocking
                pass

    def join(self) -> None:
        if self.proc is None or self.proc.wait() == 0:
            return
        self.errors.seek(0)
        detail = self.errors.read().decode(errors="replace").strip()
        raise RebuildError(f"the rebuild worker exited with {self.proc.returncode}: {detail}")

    def _stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        while self.feeder.is_alive():  # let it finish: it drains, or its write fails
            try:
                self.frames.put_nowait(None)
                break
            except queue.Full:
                with contextlib.suppress(queue.Empty):
                    self.frames.get_nowait()
        if self.errors is not None:
            self.errors.close()

    def __exit__(self, *_: object) -> None:
        self._stop()


def _frames(stream: BinaryIO) -> Iterator[bytes]:
    """Length-prefixed frames until the empty end frame; a stream that ends before it means
    the rebuild that wrote it is gone."""
    while True:
        size = stream.read(4)
        if len(size) < 4:
            raise RebuildError("the rebuild that started this worker is gone")
        frame = stream.read(int.from_bytes(size, "big"))
        if not frame:
            return
        yield frame


def fill_shard(stream: BinaryIO) -> None:
    """The worker process: fold what the arena-wide shard forwards into the category pools of
    the fresh schema, then index its partition of the history."""
    frames = _frames(stream)
    task = json.loads(next(frames))
    if os.environ.get(FAULT_WORKER):
        raise RuntimeError(f"{FAULT_WORKER} is set: failing as a test asked")
    spec, url, schema = PROJECTIONS[task["name"]], task["database_url"], task["schema"]
    fold = spec.new(Shard(categories=True))
    decode = msgspec.msgpack.Decoder(Forwarded).decode
    batches = (decode(frame) for frame in frames)
    with collector_paused(), Pipeline(url, spec, schema, batches) as pipeline:
        for batch in pipeline.pages():
            fold.apply_forwarded(batch)
            pipeline.store(spec.prepare(fold, fold.take_appends()))
        pipeline.store(spec.prepare(fold, fold.take_changes()))
    run_statements(url, [sql.SQL(s) for s in task["indexes"]])


if __name__ == "__main__":
    fill_shard(sys.stdin.buffer)
