"""When a live projector commits: at once after a quiet spell, on shared clock ticks under load.

Why pace at all. Each projector commit moves a read model, and every API answer that reads it
is recomputed at its next request (:mod:`arbiter.services.api.cache`), while the requests that
arrive meanwhile wait for that one computation. Folding each ingest batch as it lands meant
20 to 40 commits a second per projection at 1,000 events/s, and the two projections committed
at different moments, so a route that reads both (the Elo board shows both positions) was
recomputed up to 80 times a second: measured with ``benchmarks/api_load.py`` on a 2-core VM, the
Elo board then served 0.35 of the same-bytes route's requests/s, ``/summary`` 0.48. Committing
at most once per tick, with both projections on the same ticks of the system's monotonic clock
(so their commits come within milliseconds of each other, once a tick, instead of at unrelated
moments), took them to 1.11 and 1.08, and every hot route to 0.51 or more, on the same machine;
bigger batches also cost PostgreSQL less per event (one standings upsert and one commit per
batch).

What it costs, and what it does not:

* Under a sustained stream an event may wait up to one tick (:data:`DEFAULT_TICK_MS`) longer
  before it is visible: the read models are "near real time" by at most that much, as a search
  index with a refresh interval is. Every answer still says which position it reflects.
* An event that arrives after a quiet spell (no commit in the last tick) is folded at once, so a
  single result is visible as fast as before.
* A backlog (a restart, a bulk import: the last batch was full) is folded without pauses.
* Nothing is lost or reordered: pacing only chooses when the next batch is read.
* Edge cases, slower but right: a backlog holding poison events (quarantined one at a time, each
  step short of a full batch) pauses a tick at each; two processes following the same projection
  (one writer at a time, by the tracking row's lock) step on the same ticks, so the one that
  loses reloads its model, as it did whenever they met.

``ARBITER_PROJECTOR_TICK_MS=0`` commits as each batch arrives (the old behaviour).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

__all__ = ["DEFAULT_TICK_MS", "MAX_TICK_MS", "TICK_ENV", "pause", "tick_from_env"]

TICK_ENV = "ARBITER_PROJECTOR_TICK_MS"
DEFAULT_TICK_MS = 100
MAX_TICK_MS = 60_000
"""A longer tick would hold results back for minutes: surely a typo for seconds."""


def tick_from_env(environ: Mapping[str, str] = os.environ) -> float:
    """The tick in seconds from :data:`TICK_ENV` (whole milliseconds, 0 to :data:`MAX_TICK_MS`);
    a value outside that is refused naming the variable, not guessed at."""
    text = environ.get(TICK_ENV, "").strip()
    if not text:
        return DEFAULT_TICK_MS / 1000
    try:
        ms = int(text)
    except ValueError:
        raise ValueError(
            f"{TICK_ENV} must be whole milliseconds, 0 to {MAX_TICK_MS}, got {text!r}"
        ) from None
    if not 0 <= ms <= MAX_TICK_MS:
        raise ValueError(f"{TICK_ENV} must be 0 to {MAX_TICK_MS} milliseconds, got {ms}")
    return ms / 1000


def pause(now: float, last_commit: float | None, tick: float, backlog: bool) -> float:
    """Seconds to wait before reading the next batch, at monotonic time ``now``.

    Zero when pacing is off (``tick`` 0), when the last batch was full (``backlog``: fold on),
    when nothing was committed yet, or when the last commit is at least a tick old (a quiet
    spell: fold at once). Otherwise the time to the next multiple of ``tick`` on the clock, which
    is the same instant for every projector on the machine, so they fold at the same moments
    (and commit within milliseconds of each other)."""
    if tick <= 0 or backlog or last_commit is None or now - last_commit >= tick:
        return 0.0
    return tick - now % tick
