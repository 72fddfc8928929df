"""The order in which an imported file's rows enter the log: by ``tstamp``, or as in the file.

Chatbot Arena's pipeline sorts its battles by ``tstamp`` before it runs its online Elo, and
public files are not always in that order (a release concatenates shards). Elo is order
dependent, so :func:`in_order` yields the rows of an arena battles file sorted by their
``occurred_at`` instant (the row's ``tstamp``), stable: rows with equal stamps keep the file's
order, and rows without a ``tstamp`` (whose ``occurred_at`` is the import's fixed fallback, the
Unix epoch by default) come first, in file order. ``keep_order`` keeps the file's order (what
``arbiter import --keep-order`` and a JSONL of Arbiter events get: an event file's order is its
meaning, a vote after its battle).

Bounded memory. A release holds millions of rows, so the sort is external: rows are encoded
(the JSON bytes that would be published) and gathered in runs of :data:`RUN` rows, each run is
sorted in memory and spilled to a temporary file, and the runs are merged lazily with
:func:`heapq.merge`. Peak memory is one run (about 45 MB at 350 bytes a row) plus one row per
run, whatever the file's size; the temporary files take about the size of the events and are
removed when the iteration ends (or is abandoned: Ctrl-C). A file that fits in one run is never
written out. Rows the converter refused (:class:`~arbiter.adapters.arena_files.RowError`) are
yielded at once, during the first pass, so they are reported before the first row is sent.

Row identities (event ids) are computed in file order before any sorting, so the order chosen
here never changes an id.
"""

from __future__ import annotations

import heapq
import struct
import tempfile
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

from arbiter.adapters.arena_files import RowError
from arbiter.adapters.bus import encode_event

__all__ = ["RUN", "Entry", "in_order", "instant_key"]

RUN = 100_000
"""Rows sorted in memory at a time, before a run is spilled to a temporary file."""

Entry = tuple[int, bytes] | RowError
"""What :func:`in_order` yields: ``(row number, event JSON)`` or a refused row."""

_HEADER = struct.Struct(">qqI")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)
_UNREADABLE = -(2**62)


def instant_key(event: dict[str, Any]) -> int:
    """Microseconds since the epoch of ``occurred_at``; an unreadable one sorts first (such an
    event is refused by validation anyway, wherever it stands)."""
    value = event.get("occurred_at")
    try:
        moment = datetime.fromisoformat(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return _UNREADABLE
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH) // _MICRO


def in_order(
    items: Iterable[tuple[int, dict[str, Any] | RowError]],
    *,
    keep_order: bool = False,
    run: int = RUN,
    on_read: Callable[[int], None] | None = None,
) -> Iterator[Entry]:
    """The rows of ``items`` (from :func:`~arbiter.adapters.arena_files.iter_import`) as event
    JSON, sorted by instant (stable) unless ``keep_order``; ``on_read(n)`` reports the rows
    read so far during the sorting pass (every 10,000)."""
    if keep_order:
        for row, item in items:
            yield item if isinstance(item, RowError) else (row, encode_event(item).payload)
        return
    with tempfile.TemporaryDirectory(prefix="arbiter-import-") as tmp:
        runs: list[Path] = []
        buffer: list[tuple[int, int, bytes]] = []
        read = 0
        for row, item in items:
            read += 1
            if on_read is not None and not read % 10_000:
                on_read(read)
            if isinstance(item, RowError):
                yield item
                continue
            buffer.append((instant_key(item), row, encode_event(item).payload))
            if len(buffer) >= run:
                runs.append(_spill(buffer, Path(tmp) / f"run{len(runs)}"))
                buffer = []
        if on_read is not None:
            on_read(read)
        buffer.sort()  # (instant, row): rows are unique, so the payload is never compared
        if not runs:
            yield from ((row, payload) for _, row, payload in buffer)
            return
        runs.append(_spill(buffer, Path(tmp) / f"run{len(runs)}"))
        del buffer
        files = [path.open("rb", buffering=1 << 20) for path in runs]
        try:
            for _, row, payload in heapq.merge(*(_read_run(f) for f in files)):
                yield row, payload
        finally:
            for f in files:
                f.close()


def _spill(buffer: list[tuple[int, int, bytes]], path: Path) -> Path:
    buffer.sort()
    with path.open("wb", buffering=1 << 20) as f:
        for key, row, payload in buffer:
            f.write(_HEADER.pack(key, row, len(payload)))
            f.write(payload)
    return path


def _read_run(f: IO[bytes]) -> Iterator[tuple[int, int, bytes]]:
    size = _HEADER.size
    while header := f.read(size):
        key, row, length = _HEADER.unpack(header)
        yield key, row, f.read(length)
