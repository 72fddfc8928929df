"""End-to-end ingest and rebuild benchmark for Arbiter, in the production process shape.

What is measured
----------------
1. **Ingest, end to end.** ``arbiter ingest`` (NATS -> event store) and ``arbiter project``
   (event store -> every projection of :data:`arbiter.projections.PROJECTIONS`: ratings and
   results) run as two separate subprocesses, as in production. Once both are ready (the
   ingest's durable pull consumer has a fetch waiting; the projector is LISTENing and every
   projection is caught up), this process records ``t0`` and publishes N seeded events of the
   ``--workload`` through :class:`arbiter.adapters.bus.Publisher` (pipelined, in chunks of
   5,000 so memory stays flat):

   * ``battles`` (default): ``battle.completed`` only;
   * ``mixed``: games, battles (some awaiting votes, some with metrics), pairwise votes, trials
     with metrics and dimensions, score votes and voids, in log order (see :func:`mixed_chunks`).

   A monitor thread polls PostgreSQL every 0.1 s: ``max(notification_id)`` / ``count(*)`` of
   ``arbiter_events`` (the log) and the ``tracking.position`` of every projection. Reported, all
   from ``t0``:

   * *publish*: every event acknowledged by JetStream (``N / t_publish`` = publish-only rate);
   * *log append*: all N events appended to the log by the ingest (N less those rejected, which
     are counted on ``ARBITER_REJECTED``, by code; a well-formed workload has none);
   * *<projection> caught up*: that projection's position reached the log head;
   * *end to end*: EVERY projection has folded the log up to the last of them (``N / t1``).

   The poll interval bounds the resolution of the last ones (about 0.1 s).
2. **Rebuild.** The services are stopped (SIGTERM, then waited for) and
   :func:`arbiter.services.processes.rebuild.rebuild` rebuilds each projection in turn from
   position 0 in this process; each one's ``events / seconds`` is reported. Then
   :func:`arbiter.services.processes.audit.verify` replays the log in memory and compares every
   row with the ratings read model; its rate and verdict are reported. Every table of every
   projection is digested in PostgreSQL before and after the rebuilds: equal digests mean the
   incremental projector and the rebuild stored the same rows.
3. **Memory.** A sampler thread reads, every 0.2 s, the RSS and CPU time of the ingest, the
   projector, nats-server, every PostgreSQL process (embedded servers only) and this process.
   Reported: the peak RSS of each service subprocess, of nats-server, and of this process during
   each rebuild and the audit (sampled; ``ru_maxrss`` gives this process's lifetime peak, which
   includes publishing). PostgreSQL's RSS is not reported: summing it over backends counts
   shared buffers many times.
4. **CPU.** Average CPU use of each process group over the publish window, the drain window
   (publish acked -> projected) and the rebuilds, in percent of one core, plus the whole
   machine's busy share: this names the bottleneck (a group near 100 % is CPU-bound on one core;
   a machine near 100 % has no spare core).

On fresh embedded servers the event ids depend only on the seed, so the log and therefore the
audit's state digest are identical across runs and machines for the same ``--workload``,
``--events``, ``--competitors``, ``--seed`` (and ``--void-window``): a quick check that two runs
measured the same work.

Nothing is asserted about timings: this is a measurement tool. It fails only when the services
fail (a subprocess exits or nothing moves for ``--stall-timeout`` seconds), printing their logs,
or when the audit or the rebuild-equals-incremental check finds a difference (exit 1).

Servers: embedded PostgreSQL and nats-server in a fresh temporary home (``--home DIR`` to use a
given one), or the servers named by ``ARBITER_DATABASE_URL`` and ``ARBITER_NATS_URL`` when both
are set (use dedicated, otherwise idle ones: counts are taken relative to the log's head at
start, but another projector or producer would distort the numbers).

Usage::

    python benchmarks/ingest_rebuild.py [--events 100000] [--workload battles|mixed]
        [--competitors 100] [--home DIR]

Results are printed and written as JSON to ``benchmarks/results/ingest_rebuild-<UTC time>.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import itertools
import json
import os
import platform
import random
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib import metadata
from pathlib import Path
from types import FrameType
from typing import Any

import psutil
import psycopg
from arbiter.adapters.bus import INGEST_DURABLE, REJECTED_STREAM, STREAM, Publisher
from arbiter.adapters.embedded import EmbeddedServers
from arbiter.projections import PROJECTIONS, tracking
from arbiter.services.processes.audit import verify
from arbiter.services.processes.rebuild import rebuild
from arbiter.services.setup import prepare_database
from psycopg import sql

REPO = Path(__file__).resolve().parents[1]
RESULTS_DIR = REPO / "benchmarks" / "results"
MIB = 1024 * 1024
CHUNK = 5_000
"""Events per ``Publisher.publish`` call: bounds the publisher's memory."""
POLL_S = 0.1
"""How often the monitor polls the log head and the projection position."""
SAMPLE_S = 0.2
WORKER = "rebuild worker"
"""How often the sampler reads RSS and CPU times of the processes."""
CATEGORIES = ("code", "math", "writing", "voice")
ARENA = "bench"


# -- workload -------------------------------------------------------------------------------------


def battle_chunks(
    n: int, competitors: int, seed: int, run_id: str, chunk: int = CHUNK
) -> Iterator[list[dict[str, Any]]]:
    """N ``battle.completed`` events in lists of ``chunk``, fully determined by ``seed``.

    Competitors ``m000``.. have hidden Gaussian strengths; a battle is a tie with probability
    0.1, else ``a`` wins with the Elo probability of the strengths. Half the battles name one of
    four categories; a fifth are judged by a human. Only the ids carry ``run_id`` (a rerun on
    servers that already hold a run's events needs new ids, or it would publish duplicates).
    """
    rng = random.Random(seed)
    names = [f"m{i:03d}" for i in range(competitors)]
    strength = [rng.gauss(0.0, 200.0) for _ in names]
    start = datetime(2025, 1, 1, tzinfo=UTC)
    out: list[dict[str, Any]] = []
    for i in range(n):
        ia, ib = rng.sample(range(competitors), 2)
        if rng.random() < 0.1:
            outcome = "tie"
        else:
            p_a = 1.0 / (1.0 + 10.0 ** ((strength[ib] - strength[ia]) / 400.0))
            outcome = "a" if rng.random() < p_a else "b"
        event: dict[str, Any] = {
            "type": "battle.completed",
            "event_id": f"bench-{run_id}-e{i}",
            "occurred_at": (start + timedelta(seconds=i)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "arena": ARENA,
            "battle_id": f"bench-{run_id}-b{i}",
            "a": names[ia],
            "b": names[ib],
            "outcome": outcome,
            "judge": "human" if rng.random() < 0.2 else "auto",
            "source": "benchmark",
        }
        if rng.random() < 0.5:
            event["category"] = rng.choice(CATEGORIES)
        out.append(event)
        if len(out) == chunk:
            yield out
            out = []
    if out:
        yield out


MIX: tuple[tuple[str, float], ...] = (
    ("game", 0.30),
    ("battle", 0.35),
    ("vote", 0.15),
    ("trial", 0.15),
    ("score", 0.04),
    ("void", 0.01),
)
"""The ``mixed`` workload's share of each kind of event (drawn independently per event)."""
VOID_WINDOW = 2_000
"""A void corrects one of the last ``VOID_WINDOW`` results: a recent mistake, as in practice.
(The ratings replay a pool from the checkpoint before the target, so the reach of a void is
what it costs; ``--void-window`` widens it to measure that.)"""
VOTERS = 2_000
PERSONAS = ("student", "engineer", "doctor", "child", "elder")
STYLES = ("formal", "casual", "terse")
INPUT_TYPES = ("text", "audio")


def mixed_chunks(
    n: int,
    competitors: int,
    seed: int,
    run_id: str,
    counts: dict[str, int],
    chunk: int = CHUNK,
    void_window: int = VOID_WINDOW,
) -> Iterator[list[dict[str, Any]]]:
    """N events of every result type, in log order, in lists of ``chunk``; fully seeded.

    Per event, a kind is drawn from :data:`MIX`: a game of 2-8 players (ranked by hidden strength
    plus noise, about 5 % of neighbours tied), a battle (30 % awaiting votes with outcome null,
    40 % with ``metrics`` ``{a: {wer, latency_ms}, b: {...}}``), a pairwise vote on an earlier
    battle (60 % of them on one awaiting votes) by a voter who has not voted on it, a trial
    (5 experiments, 10 % failed, metrics and dimensions), a 1-5 score vote on an earlier trial
    (a quarter re-score a trial the same voter scored before, which replaces the earlier score),
    or a void of one of the last ``void_window`` results not yet voided. A vote or a void with
    nothing to target yet becomes a battle, a trial or a game instead. Every target precedes
    its vote or void, so nothing waits for a redelivery and nothing is rejected. ``counts`` is
    filled with what was generated, by kind.
    """
    rng = random.Random(seed)
    names = [f"m{i:03d}" for i in range(competitors)]
    strength = [rng.gauss(0.0, 200.0) for _ in names]
    start = datetime(2025, 1, 1, tzinfo=UTC)
    kinds, weights = zip(*MIX, strict=True)
    cumulative = list(itertools.accumulate(weights))
    prefix = f"bench-{run_id}"
    battles: list[tuple[str, int, int]] = []  # (battle_id, index of a, index of b)
    awaiting: list[int] = []  # indexes into battles of those with outcome null
    voters_of: dict[int, set[int]] = {}
    trials: list[str] = []
    scored: list[tuple[str, int]] = []  # (trial_id, voter) pairs that have a score
    results: list[str] = []  # event ids of every result, in log order
    voided: set[str] = set()
    max_players = min(8, competitors)

    def pairwise(ia: int, ib: int) -> str:
        if rng.random() < 0.1:
            return "tie"
        p_a = 1.0 / (1.0 + 10.0 ** ((strength[ib] - strength[ia]) / 400.0))
        return "a" if rng.random() < p_a else "b"

    def count(kind: str) -> None:
        counts[kind] = counts.get(kind, 0) + 1

    out: list[dict[str, Any]] = []
    for i in range(n):
        kind = kinds[bisect.bisect(cumulative, rng.random() * cumulative[-1])]
        if kind == "vote" and not battles:
            kind = "battle"
        elif kind == "score" and not trials:
            kind = "trial"
        elif kind == "void" and not results:
            kind = "game"
        event_id = f"{prefix}-e{i}"
        event: dict[str, Any] = {
            "event_id": event_id,
            "occurred_at": (start + timedelta(seconds=i)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "arena": ARENA,
            "source": "benchmark",
        }
        if kind == "game":
            players = rng.sample(range(competitors), rng.randint(2, max_players))
            players.sort(key=lambda c: strength[c] + rng.gauss(0.0, 200.0), reverse=True)
            participants, rank = [], 1
            for seat, c in enumerate(players):
                if seat and rng.random() >= 0.05:
                    rank = seat + 1
                participants.append({"competitor": names[c], "rank": rank})
            rng.shuffle(participants)
            event.update(type="game.completed", game_id=f"{prefix}-g{i}")
            event["participants"] = participants
            if rng.random() < 0.5:
                event["rounds"] = rng.randint(1, 40)
            count("game.completed")
        elif kind == "battle":
            ia, ib = rng.sample(range(competitors), 2)
            outcome = None if rng.random() < 0.3 else pairwise(ia, ib)
            event.update(
                type="battle.completed",
                battle_id=f"{prefix}-b{i}",
                a=names[ia],
                b=names[ib],
                outcome=outcome,
                judge="human" if rng.random() < 0.2 else "auto",
            )
            if rng.random() < 0.4:
                event["metrics"] = {
                    side: {
                        "wer": round(rng.uniform(0.0, 0.4), 4),
                        "latency_ms": round(rng.lognormvariate(6.5, 0.4), 1),
                    }
                    for side in ("a", "b")
                }
                count("battle.completed: with metrics")
            if outcome is None:
                awaiting.append(len(battles))
                count("battle.completed: awaiting votes")
            battles.append((event["battle_id"], ia, ib))
            count("battle.completed")
        elif kind == "vote":
            while True:
                if awaiting and rng.random() < 0.6:
                    target = awaiting[rng.randrange(len(awaiting))]
                else:
                    target = rng.randrange(len(battles))
                voters = voters_of.setdefault(target, set())
                if len(voters) < VOTERS // 2:
                    break
            voter = rng.randrange(VOTERS)
            while voter in voters:
                voter = rng.randrange(VOTERS)
            voters.add(voter)
            battle_id, ia, ib = battles[target]
            event.update(
                type="vote.cast",
                vote_id=f"{prefix}-v{i}",
                voter=f"voter{voter:04d}",
                battle_id=battle_id,
                choice=pairwise(ia, ib),
            )
            count("vote.cast pairwise")
        elif kind == "trial":
            c = rng.randrange(competitors)
            failed = rng.random() < 0.1
            ttfb = round(rng.lognormvariate(5.5, 0.5), 1)
            metrics: dict[str, float] = {"ttfb_ms": ttfb}
            if not failed:
                generation = round(rng.lognormvariate(7.0, 0.5), 1)
                input_tokens, output_tokens = rng.randint(20, 2_000), rng.randint(10, 1_500)
                metrics.update(
                    generation_time_ms=generation,
                    latency_ms=round(ttfb + generation, 1),
                    cost_usd=round((input_tokens * 0.5 + output_tokens * 1.5) / 1e6, 8),
                    input_tokens=input_tokens,
                    output_tokens=output_tokens,
                )
            event.update(
                type="trial.completed",
                experiment_id=f"{prefix}-x{rng.randrange(5)}",
                trial_id=f"{prefix}-t{i}",
                competitor=names[c],
                prompt_index=rng.randrange(200),
                status="failed" if failed else "completed",
                metrics=metrics,
                dimensions={
                    "persona": rng.choice(PERSONAS),
                    "style": rng.choice(STYLES),
                    "input_type": rng.choice(INPUT_TYPES),
                },
            )
            if failed:
                event["error"] = "timeout after 30 s"
                count("trial.completed: failed")
            trials.append(event["trial_id"])
            count("trial.completed")
        elif kind == "score":
            if scored and rng.random() < 0.25:
                trial_id, voter = scored[rng.randrange(len(scored))]
                count("vote.cast score: replacing an earlier")
            else:
                trial_id, voter = trials[rng.randrange(len(trials))], rng.randrange(VOTERS)
                scored.append((trial_id, voter))
            event.update(
                type="vote.cast",
                vote_id=f"{prefix}-v{i}",
                voter=f"voter{voter:04d}",
                trial_id=trial_id,
                score=rng.randint(1, 5),
            )
            count("vote.cast score")
        else:  # void
            recent = results[-void_window:]
            target_id = recent[rng.randrange(len(recent))]
            for _ in range(10):
                if target_id not in voided:
                    break
                target_id = recent[rng.randrange(len(recent))]
            else:
                target_id = None
            if target_id is None:  # the window is all voided: a game instead
                players = rng.sample(range(competitors), 2)
                event.update(type="game.completed", game_id=f"{prefix}-g{i}")
                event["participants"] = [
                    {"competitor": names[c], "rank": r + 1} for r, c in enumerate(players)
                ]
                count("game.completed")
            else:
                voided.add(target_id)
                event.update(
                    type="result.voided", target_event_id=target_id, reason="benchmark correction"
                )
                count("result.voided")
        if event["type"] != "result.voided":
            results.append(event_id)
            if event["type"] != "vote.cast" and rng.random() < 0.5:
                event["category"] = rng.choice(CATEGORIES)
        out.append(event)
        if len(out) == chunk:
            yield out
            out = []
    if out:
        yield out


WORKLOADS = ("battles", "mixed")


def workload_chunks(
    args: argparse.Namespace, run_id: str, counts: dict[str, int]
) -> Iterator[list[dict[str, Any]]]:
    """The chunks of ``--workload``; ``counts`` gets what was generated, by kind."""
    if args.workload == "mixed":
        return mixed_chunks(
            args.events, args.competitors, args.seed, run_id, counts, void_window=args.void_window
        )
    counts["battle.completed"] = args.events
    return battle_chunks(args.events, args.competitors, args.seed, run_id)


# -- process sampling -----------------------------------------------------------------------------


@dataclass
class Sample:
    t: float
    rss: dict[str, int]
    cpu: dict[str, float]
    machine_busy: float
    machine_total: float


class Sampler(threading.Thread):
    """Samples RSS and cumulative CPU seconds per process group every ``SAMPLE_S`` seconds.

    CPU per group is the sum over its processes of CPU time used since the sampler first saw
    them (processes born later count from zero), so a backend that exits keeps what it used up to
    its last sample. ``snapshot()`` takes an extra sample at a phase boundary.
    """

    def __init__(self) -> None:
        super().__init__(name="sampler", daemon=True)
        self.groups: dict[str, psutil.Process] = {"benchmark": psutil.Process()}
        self.tree_groups: dict[str, psutil.Process] = {}
        self.samples: list[Sample] = []
        self._procs: dict[int, psutil.Process] = {}
        self._base: dict[int, float] = {}
        self._last: dict[int, float] = {}
        self._group_of: dict[int, str] = {}
        self._born_after = time.time()
        self._halt = threading.Event()
        self._lock = threading.Lock()

    def add(self, name: str, pid: int | None, *, tree: bool = False) -> None:
        """Track ``pid`` as group ``name`` (with all its descendants when ``tree``)."""
        if pid is None:
            return
        with contextlib.suppress(psutil.Error), self._lock:
            (self.tree_groups if tree else self.groups)[name] = psutil.Process(pid)

    def _cpu(self, proc: psutil.Process, group: str) -> None:
        pid = proc.pid
        known = self._procs.get(pid)
        if known is None or known.create_time() != proc.create_time():
            self._procs[pid] = proc
            born_late = proc.create_time() > self._born_after
            times = proc.cpu_times()
            self._base[pid] = 0.0 if born_late else times.user + times.system
            self._group_of[pid] = group
        times = self._procs[pid].cpu_times()
        self._last[pid] = times.user + times.system

    def snapshot(self) -> Sample:
        with self._lock:
            rss: dict[str, int] = {}
            for name, proc in self.groups.items():
                with contextlib.suppress(psutil.Error):
                    rss[name] = proc.memory_info().rss
                    self._cpu(proc, name)
            for name, root in self.tree_groups.items():
                with contextlib.suppress(psutil.Error):
                    for proc in [root, *root.children(recursive=True)]:
                        with contextlib.suppress(psutil.Error):
                            self._cpu(proc, name)
            # Any other child of this process is a rebuild worker (a sharded rebuild's second
            # process). Sampled like the rest, so up to SAMPLE_S of its CPU at exit is missed.
            with contextlib.suppress(psutil.Error):
                for proc in self.groups["benchmark"].children():
                    if self._group_of.get(proc.pid, WORKER) == WORKER:
                        with contextlib.suppress(psutil.Error):
                            rss[WORKER] = max(rss.get(WORKER, 0), proc.memory_info().rss)
                            self._cpu(proc, WORKER)
            cpu: dict[str, float] = {}
            for pid, group in self._group_of.items():
                cpu[group] = cpu.get(group, 0.0) + self._last[pid] - self._base[pid]
            mt = psutil.cpu_times()
            idle = mt.idle + getattr(mt, "iowait", 0.0)
            total = sum(mt)
            sample = Sample(time.perf_counter(), rss, cpu, total - idle, total)
            self.samples.append(sample)
            return sample

    def run(self) -> None:
        while not self._halt.wait(SAMPLE_S):
            self.snapshot()

    def stop(self) -> None:
        self._halt.set()
        if self.is_alive():
            self.join(5)

    def peak_rss(self, group: str, t_from: float = 0.0, t_to: float = float("inf")) -> int | None:
        values = [s.rss[group] for s in self.samples if t_from <= s.t <= t_to and group in s.rss]
        return max(values) if values else None

    def cpu_share(self, a: Sample, b: Sample) -> dict[str, dict[str, float]]:
        """CPU seconds and percent of one core per group between two samples, plus the machine."""
        wall = max(b.t - a.t, 1e-9)
        out = {}
        for group in sorted(set(a.cpu) | set(b.cpu)):
            seconds = b.cpu.get(group, 0.0) - a.cpu.get(group, 0.0)
            out[group] = {"cpu_s": round(seconds, 3), "pct_of_core": round(100 * seconds / wall, 1)}
        total = b.machine_total - a.machine_total
        busy = b.machine_busy - a.machine_busy
        ours = sum(entry["cpu_s"] for entry in out.values())
        out["others"] = {
            "cpu_s": round(busy - ours, 3),
            "pct_of_core": round(100 * max(busy - ours, 0.0) / wall, 1),
        }
        out["machine"] = {
            "cpu_s": round(busy, 3),
            "busy_pct": round(100 * busy / total, 1) if total > 0 else 0.0,
        }
        return out


# -- database progress ----------------------------------------------------------------------------


def log_head(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute("SELECT max(notification_id) FROM arbiter_events").fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def projection_positions(conn: psycopg.Connection[Any]) -> dict[str, int]:
    """Each projection's tracking position (every projection ``arbiter project`` runs)."""
    with conn.cursor() as cur:
        return {
            name: tracking.position(cur, spec.schema, name) for name, spec in PROJECTIONS.items()
        }


def table_digests(conn: psycopg.Connection[Any], schema: str) -> dict[str, tuple[int, str]]:
    """Per table of a projection's schema (tracking and schema_migrations aside): its row count
    and an order-free digest of its rows (the sum of a hash of each row's text), computed in
    PostgreSQL. Equal before and after a rebuild means the incremental build and the rebuild
    stored the same rows."""
    tables = conn.execute(
        "SELECT tablename FROM pg_tables WHERE schemaname = %s "
        "AND tablename NOT IN ('tracking', 'schema_migrations') ORDER BY tablename",
        (schema,),
    ).fetchall()
    out = {}
    for (table,) in tables:
        row = conn.execute(
            sql.SQL(
                "SELECT count(*), "
                "coalesce(sum(('x' || left(md5(t::text), 15))::bit(60)::bigint), 0) FROM {}.{} t"
            ).format(sql.Identifier(schema), sql.Identifier(table))
        ).fetchone()
        assert row is not None
        out[table] = (int(row[0]), str(row[1]))
    return out


def stored_digests(database_url: str) -> dict[str, dict[str, tuple[int, str]]]:
    with psycopg.connect(database_url, autocommit=True) as conn:
        return {name: table_digests(conn, spec.schema) for name, spec in PROJECTIONS.items()}


class Monitor(threading.Thread):
    """Polls the log and every projection until the workload is appended and projected.

    The workload is complete in the log when ``expected`` events are appended: those published,
    less the rejected ones, which the ingest loop counts on ``ARBITER_REJECTED`` and lowers
    ``expected`` by (so a rejection shows up as a count, not as a stall). It is projected when EVERY
    projection's tracking position has reached the log head at that moment; the time each one
    got there is kept too (``t_caught_up``), to show which projection is the slower.
    """

    def __init__(self, database_url: str, base_head: int, n: int, t0: float) -> None:
        super().__init__(name="monitor", daemon=True)
        self.url, self.base_head, self.n, self.t0 = database_url, base_head, n, t0
        self.expected: int | None = None
        """Events the log must gain: set once everything is published (N less JetStream
        duplicates), lowered by every rejection."""
        self.appended = 0
        self.positions: dict[str, int] = dict.fromkeys(PROJECTIONS, 0)
        self.target_position: int | None = None
        self.t_logged: float | None = None
        self.t_caught_up: dict[str, float] = {}
        self.t_projected: float | None = None
        self.last_change = time.perf_counter()
        self.timeline: list[tuple[float, int, dict[str, int]]] = []
        self.error: BaseException | None = None
        self.done = threading.Event()
        self._halt = threading.Event()

    def run(self) -> None:
        try:
            self._poll()
        except BaseException as exc:
            self.error = exc
        finally:
            self.done.set()

    def _projected(self, positions: dict[str, int]) -> dict[str, int]:
        return {name: max(p - self.base_head, 0) for name, p in positions.items()}

    def _poll(self) -> None:
        next_mark = 0.0
        with psycopg.connect(self.url, autocommit=True) as conn:
            while not self._halt.is_set():
                head = log_head(conn)
                positions = projection_positions(conn)
                now = time.perf_counter()
                expected = self.expected
                if (
                    self.t_logged is None
                    and expected is not None
                    and head - self.base_head >= expected
                ):
                    row = conn.execute(
                        "SELECT count(*) FROM arbiter_events WHERE notification_id > %s",
                        (self.base_head,),
                    ).fetchone()
                    appended = int(row[0]) if row else 0
                    if appended >= expected:
                        self.t_logged, self.target_position = now, head
                elif self.t_logged is None:
                    appended = min(max(head - self.base_head, 0), self.n)
                else:
                    appended = self.appended
                if (appended, positions) != (self.appended, self.positions):
                    self.last_change = now
                self.appended, self.positions = appended, positions
                if now - self.t0 >= next_mark:
                    self.timeline.append(
                        (round(now - self.t0, 2), appended, self._projected(positions))
                    )
                    next_mark += 0.5
                if self.target_position is not None:
                    for name, position in positions.items():
                        if position >= self.target_position:
                            self.t_caught_up.setdefault(name, now)
                    if len(self.t_caught_up) == len(positions):
                        self.t_projected = now
                        self.timeline.append(
                            (round(now - self.t0, 2), appended, self._projected(positions))
                        )
                        return
                self._halt.wait(POLL_S)

    def stop(self) -> None:
        self._halt.set()


# -- services -------------------------------------------------------------------------------------


@dataclass
class Service:
    name: str
    proc: subprocess.Popen[bytes]
    log_file: Path
    stop_seconds: float | None = None
    exit_code: int | None = None

    def tail(self, lines: int = 40) -> str:
        try:
            text = self.log_file.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:]) or "(empty log)"


def start_service(name: str, command: str, env: dict[str, str], log_dir: Path) -> Service:
    """``python -m arbiter.services.cli <command>`` in its own session, logging to a file."""
    log_file = log_dir / f"{name}.log"
    with open(log_file, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "arbiter.services.cli", command],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Service(name, proc, log_file)


def stop_service(service: Service, timeout: float = 30.0) -> None:
    """SIGTERM, wait up to ``timeout``; then SIGKILL. Records how long the shutdown took."""
    proc = service.proc
    started = time.perf_counter()
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            print(f"warning: {service.name} ignored SIGTERM for {timeout:.0f}s; killing it")
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            proc.wait(10)
    if service.stop_seconds is None:
        service.stop_seconds = time.perf_counter() - started
        service.exit_code = proc.returncode


class ServiceFailure(RuntimeError):
    """A service crashed or stalled; the message holds what it logged."""


def check_alive(services: list[Service], what: str) -> None:
    for service in services:
        code = service.proc.poll()
        if code is not None:
            raise ServiceFailure(
                f"{service.name} exited with {code} {what}\n--- {service.log_file} ---\n"
                f"{service.tail()}"
            )


# -- ingest phase ---------------------------------------------------------------------------------


@dataclass
class IngestTimes:
    t0: float = 0.0
    t_published: float = 0.0
    generate_s: float = 0.0
    published: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    duplicates: int = 0
    rejected: int = 0
    rejected_codes: dict[str, int] = field(default_factory=dict)
    rejected_examples: list[str] = field(default_factory=list)
    nats_version: str = "?"
    monitor: Monitor | None = None
    samples: dict[str, Sample] = field(default_factory=dict)


async def wait_ready(
    pub: Publisher,
    database_url: str,
    base_head: int,
    services: list[Service],
    timeout: float,
    *,
    projector: bool = True,
) -> None:
    """Until the ingest has a pull request waiting and (with ``projector``) every projection
    listens and is caught up."""
    assert pub.js is not None
    deadline = time.monotonic() + timeout
    with psycopg.connect(database_url, autocommit=True) as conn:
        while True:
            check_alive(services, "while starting")
            ingest_ready = False
            with contextlib.suppress(Exception):
                info = await pub.js.consumer_info(STREAM, INGEST_DURABLE)
                ingest_ready = (info.num_waiting or 0) > 0
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND query LIKE 'LISTEN %%'"
            ).fetchone()
            listening = bool(row and row[0] >= len(PROJECTIONS)) or not projector
            caught_up = min(projection_positions(conn).values()) >= base_head or not projector
            if ingest_ready and listening and caught_up:
                return
            if time.monotonic() > deadline:
                raise ServiceFailure(
                    f"services not ready after {timeout:.0f}s (ingest consumer waiting: "
                    f"{ingest_ready}, projector listening: {listening}, caught up: {caught_up})\n"
                    + "\n".join(f"--- {s.log_file} ---\n{s.tail()}" for s in services)
                )
            await asyncio.sleep(0.1)


async def ingest_phase(
    args: argparse.Namespace,
    database_url: str,
    nats_url: str,
    base_head: int,
    services: list[Service],
    sampler: Sampler,
    run_id: str,
    start_projector: Callable[[], None],
) -> IngestTimes:
    times = IngestTimes()
    async with Publisher(nats_url) as pub:
        assert pub.nc is not None and pub.js is not None
        v = pub.nc.connected_server_version
        times.nats_version = f"{v.major}.{v.minor}.{v.patch}" + (f"-{v.dev}" if v.dev else "")
        # One after the other: each service's EventLog runs eventsourcing's create_table, whose
        # CREATE OR REPLACE FUNCTION fails with "tuple concurrently updated" when two processes
        # run it at the same moment (a startup race of the services, not what is measured).
        await wait_ready(
            pub, database_url, base_head, services, args.ready_timeout, projector=False
        )
        start_projector()
        await wait_ready(pub, database_url, base_head, services, args.ready_timeout)
        rejected_before = await rejected_seq(pub)
        times.samples["t0"] = sampler.snapshot()
        times.t0 = time.perf_counter()
        monitor = Monitor(database_url, base_head, args.events, times.t0)
        times.monitor = monitor
        monitor.start()
        chunks = workload_chunks(args, run_id, times.counts)
        while True:
            g0 = time.perf_counter()
            chunk = next(chunks, None)
            times.generate_s += time.perf_counter() - g0
            if chunk is None:
                break
            acks = await pub.publish(chunk, timeout=120.0)
            times.duplicates += sum(1 for ack in acks if ack.duplicate)
            times.published += len(acks)
        times.t_published = time.perf_counter()
        times.samples["published"] = sampler.snapshot()
        next_check = 0.0
        while not monitor.done.is_set():
            await asyncio.sleep(0.1)
            check_alive(services, "during ingest")
            now = time.perf_counter()
            if now >= next_check:  # a rejected event is never appended: stop waiting for it
                rejected = await rejected_seq(pub) - rejected_before
                monitor.expected = times.published - times.duplicates - rejected
                next_check = now + 0.5
            if now - monitor.last_change > args.stall_timeout:
                monitor.stop()
                rejected = await rejected_seq(pub) - rejected_before
                raise ServiceFailure(
                    f"no progress for {args.stall_timeout:.0f}s: {monitor.appended}/"
                    f"{args.events} appended, projections at {monitor.positions} "
                    f"(target {monitor.target_position}); {rejected} rejected events\n"
                    + "\n".join(f"--- {s.log_file} ---\n{s.tail()}" for s in services)
                )
        times.samples["projected"] = sampler.snapshot()
        if monitor.error is not None:
            raise monitor.error
        last = await rejected_seq(pub)
        times.rejected = last - rejected_before
        times.rejected_codes, times.rejected_examples = await rejections(pub, rejected_before, last)
    return times


async def rejected_seq(pub: Publisher) -> int:
    """The last sequence of ``ARBITER_REJECTED`` (0 when it is empty or absent)."""
    assert pub.js is not None
    try:
        info = await pub.js.stream_info(REJECTED_STREAM)
    except Exception:
        return 0
    return int(info.state.last_seq)


async def rejections(
    pub: Publisher, after: int, last: int, limit: int = 1_000
) -> tuple[dict[str, int], list[str]]:
    """The rejections this run caused: counts by code (of the first ``limit``) and the first
    few in full, so a workload that is not well-formed says why."""
    assert pub.js is not None
    codes: dict[str, int] = {}
    examples: list[str] = []
    for seq in range(after + 1, min(last, after + limit) + 1):
        with contextlib.suppress(Exception):
            msg = await pub.js.get_msg(REJECTED_STREAM, seq)
            rejection = json.loads(msg.data or b"{}").get("rejection", {})
            code = str(rejection.get("code", "?"))
            codes[code] = codes.get(code, 0) + 1
            if len(examples) < 5:
                examples.append(f"{rejection.get('event_id')}: {code}: {rejection.get('message')}")
    return codes, examples


# -- machine --------------------------------------------------------------------------------------


def machine_info(
    database_url: str, nats_version: str, home: Path, load_at_start: tuple[float, ...]
) -> dict[str, Any]:
    cpu_model = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    cpu_limit = None
    with contextlib.suppress(OSError, ValueError):
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()
        cpu_limit = None if quota == "max" else round(int(quota) / int(period), 2)
    with psycopg.connect(database_url) as conn:
        settings = {
            name: str(conn.execute(sql.SQL("SHOW {}").format(sql.Identifier(name))).fetchone()[0])  # type: ignore[index]
            for name in ("server_version", "shared_buffers", "synchronous_commit", "fsync")
        }
    fs = "?"
    with contextlib.suppress(Exception):
        target = str(home.resolve())
        parts = [p for p in psutil.disk_partitions(all=True) if target.startswith(p.mountpoint)]
        best = max(parts, key=lambda p: len(p.mountpoint))
        fs = f"{best.fstype} on {best.mountpoint}"
    packages = {}
    for name in ("arbiter", "eventsourcing", "psycopg", "nats-py", "msgspec", "psutil"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            packages[name] = metadata.version(name)
    return {
        "cpu_model": cpu_model,
        "logical_cores": os.cpu_count(),
        "physical_cores": psutil.cpu_count(logical=False),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "cgroup_cpu_limit": cpu_limit,
        "ram_gib": round(psutil.virtual_memory().total / 1024**3, 1),
        "load_average_at_start": [round(x, 2) for x in load_at_start],
        "os": platform.platform(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "postgresql": settings,
        "nats_server": nats_version,
        "data_filesystem": fs,
        "packages": packages,
        "git": git_info(),
    }


def git_info() -> dict[str, Any]:
    def git(*cmd: str) -> str:
        return subprocess.run(
            ["git", *cmd], cwd=REPO, capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()

    try:
        return {"commit": git("rev-parse", "HEAD"), "dirty": bool(git("status", "--porcelain"))}
    except (OSError, subprocess.SubprocessError):
        return {}


# -- report ---------------------------------------------------------------------------------------


def _processes(workers: int) -> str:
    return "in-process" if workers == 1 else f"in-process + {workers - 1} worker"


def mib(value: int | None) -> str:
    return "-" if value is None else f"{value / MIB:,.1f}"


def rate(events: int, seconds: float) -> float:
    return events / seconds if seconds > 0 else 0.0


def describe_counts(counts: dict[str, int]) -> str:
    """``{"a": 3, "a: x": 1, "b": 2}`` -> ``3 a (1 x), 2 b``."""
    parts = []
    for kind, n in counts.items():
        if ": " in kind:
            continue
        subs = [
            f"{v:,} {k.split(': ', 1)[1]}" for k, v in counts.items() if k.startswith(kind + ":")
        ]
        parts.append(f"{n:,} {kind}" + (f" ({', '.join(subs)})" if subs else ""))
    return ", ".join(parts)


def render(results: dict[str, Any]) -> str:
    m, cfg, r = results["machine"], results["config"], results["results"]
    pg = m["postgresql"]
    workload = f"workload {cfg['workload']}"
    if cfg["workload"] == "mixed":
        workload += f", void window {cfg['void_window']:,}"
    lines = [
        f"Arbiter ingest + rebuild benchmark: {cfg['events']:,} events ({workload}), "
        f"{cfg['competitors']} competitors, seed {cfg['seed']}",
        f"machine: {m['cpu_model']}, {m['logical_cores']} logical cores"
        + (f" (cgroup limit {m['cgroup_cpu_limit']})" if m["cgroup_cpu_limit"] else "")
        + f", {m['ram_gib']} GiB RAM, {m['data_filesystem']}, load average at start "
        + "/".join(f"{x:.2f}" for x in m["load_average_at_start"]),
        f"software: {m['python']}, PostgreSQL {pg['server_version']} (shared_buffers "
        f"{pg['shared_buffers']}, synchronous_commit {pg['synchronous_commit']}, fsync "
        f"{pg['fsync']}), nats-server {m['nats_server']}, {m['os']}",
        f"generated: {describe_counts(r['generated'])}",
        "",
        f"{'phase':<36}{'events':>10}{'seconds':>10}{'events/s':>11}",
    ]
    for row in r["phases"]:
        lines.append(
            f"{row['phase']:<36}{row['events']:>10,}{row['seconds']:>10.2f}{row['rate']:>11,.0f}"
        )
    lines += [
        "",
        f"{'process':<36}{'peak RSS MiB':>14}{'CPU% publish':>14}{'CPU% drain':>12}"
        f"{'CPU% rebuild':>14}",
    ]
    windows = [r["cpu"]["publish"], r["cpu"]["drain"], r["cpu"]["rebuild"]]
    widths = (14, 12, 14)
    for row in r["memory"]:
        group = row["group"]
        lines.append(
            f"{row['label']:<36}{mib(row['peak_rss']):>14}"
            + "".join(f"{_pct(w.get(group)):>{n}}" for w, n in zip(windows, widths, strict=True))
        )
    lines.append(
        f"{'other processes on the machine':<36}{'':>14}"
        + "".join(f"{_pct(w['others']):>{n}}" for w, n in zip(windows, widths, strict=True))
    )
    lines.append(
        f"{'whole machine (busy % of all cores)':<36}{'':>14}"
        + "".join(
            f"{w['machine']['busy_pct']:>{n - 1}.1f}%" for w, n in zip(windows, widths, strict=True)
        )
    )
    same = r["rebuild_equals_incremental"]
    lines += [
        "",
        f"publish window {r['publish_window_s']:.2f}s, drain window {r['drain_window_s']:.2f}s; "
        "CPU% is of one core (100% = one core saturated).",
        f"audit (ratings, results): {'OK' if r['audit']['ok'] else 'MISMATCH'} "
        f"({r['audit']['mismatches']} mismatches), digest {r['audit']['digest'][:16]}...; "
        "rebuild equals incremental: "
        + ", ".join(
            f"{name} {'yes' if v['ok'] else 'NO (' + ', '.join(v['differing_tables']) + ')'}"
            for name, v in same.items()
        ),
        f"rejected events: {r['rejected']}"
        + (
            " (" + ", ".join(f"{code} {n}" for code, n in r["rejected_by_code"].items()) + ")"
            if r["rejected_by_code"]
            else ""
        )
        + f"; JetStream duplicates: {r['duplicates']}; "
        f"event generation inside the publish window: {r['generate_s']:.2f}s",
        *(f"  rejected: {example}" for example in r["rejected_examples"]),
    ]
    return "\n".join(lines)


def _pct(entry: dict[str, float] | None) -> str:
    return "-" if entry is None else f"{entry['pct_of_core']:.1f}%"


# -- main -----------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0] if __doc__ else None)
    p.add_argument("--events", type=int, default=100_000, help="events to publish")
    p.add_argument(
        "--workload",
        choices=WORKLOADS,
        default="battles",
        help="battles: battle.completed only; mixed: games, battles, votes, trials, voids",
    )
    p.add_argument(
        "--void-window",
        type=int,
        default=VOID_WINDOW,
        help="mixed: a void targets one of the last N results (default %(default)s)",
    )
    p.add_argument("--competitors", type=int, default=100, help="distinct competitors (>= 2)")
    p.add_argument("--seed", type=int, default=1, help="workload RNG seed")
    p.add_argument("--home", type=Path, help="embedded servers' home (default: a fresh temp dir)")
    p.add_argument("--keep-home", action="store_true", help="keep the temp home (and its logs)")
    p.add_argument("--stall-timeout", type=float, default=120.0, help="fail after N s stuck")
    p.add_argument("--ready-timeout", type=float, default=60.0, help="service start timeout (s)")
    p.add_argument("--no-json", action="store_true", help="do not write the JSON results file")
    args = p.parse_args(argv)
    if args.events < 1 or args.competitors < 2 or args.void_window < 1:
        p.error("--events and --void-window must be >= 1, --competitors >= 2")
    return args


def _interrupt(signum: int, _frame: FrameType | None) -> None:
    """SIGINT/SIGTERM -> KeyboardInterrupt, so every phase unwinds through the cleanup.

    Installed in place of Python's own handler so that ``asyncio.run`` does not replace it with
    one that cancels the publishing task: nats-py turns that cancellation into an unrelated
    ``TooManyStalledMsgsError``.
    """
    raise KeyboardInterrupt(signal.Signals(signum).name)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _interrupt)
    started_at = datetime.now(UTC)
    load_at_start = os.getloadavg()
    # Fresh embedded servers: ids depend on the seed only, so the whole log, and with it the
    # audit digest, is the same on every run and machine. Servers that may hold earlier runs'
    # events (external ones, or a given --home) get ids unique to this run instead.
    fresh = args.home is None and not (
        os.environ.get("ARBITER_DATABASE_URL") and os.environ.get("ARBITER_NATS_URL")
    )
    run_id = f"seed{args.seed}" if fresh else started_at.strftime("%Y%m%dT%H%M%S%f")
    external_db, external_nats = (
        os.environ.get("ARBITER_DATABASE_URL"),
        os.environ.get("ARBITER_NATS_URL"),
    )
    external = bool(external_db and external_nats)
    temp_home = args.home is None
    home = Path(tempfile.mkdtemp(prefix="arbiter-bench-")) if temp_home else args.home.absolute()
    home.mkdir(parents=True, exist_ok=True)
    servers: EmbeddedServers | None = None
    services: list[Service] = []
    sampler = Sampler()
    keep_home = args.keep_home  # also set when a run fails: its logs explain why
    try:
        if external:
            assert external_db and external_nats
            database_url, nats_url = external_db, external_nats
            print(f"using external servers ({nats_url}); logs in {home}")
        else:
            servers = EmbeddedServers(home)
            database_url, nats_url = servers.start()
            print(f"embedded servers under {home}")
        prepare_database(database_url)
        with psycopg.connect(database_url, autocommit=True) as conn:
            base_head = log_head(conn)
        if servers is not None:
            sampler.add("nats-server", servers.nats.pid)
            sampler.add("postgres", servers.postgres.pid, tree=True)
        sampler.start()

        env = dict(os.environ)
        env.update(
            ARBITER_DATABASE_URL=database_url, ARBITER_NATS_URL=nats_url, ARBITER_HOME=str(home)
        )
        services.append(start_service("ingest", "ingest", env, home))
        sampler.add("ingest", services[0].proc.pid)

        def start_projector() -> None:
            services.append(start_service("projector", "project", env, home))
            sampler.add("projector", services[-1].proc.pid)

        print(f"publishing {args.events:,} events ...", flush=True)
        times = asyncio.run(
            ingest_phase(
                args, database_url, nats_url, base_head, services, sampler, run_id, start_projector
            )
        )
        monitor = times.monitor
        assert monitor is not None and monitor.t_logged and monitor.t_projected
        assert monitor.expected is not None
        n = times.published
        t_pub = times.t_published - times.t0
        t_log = monitor.t_logged - times.t0
        t_e2e = monitor.t_projected - times.t0
        print(f"projected in {t_e2e:.2f}s; stopping services, rebuilding ...", flush=True)

        for service in services:
            stop_service(service)
        incremental = stored_digests(database_url)
        rebuilt: dict[str, Any] = {}
        rebuild_windows: dict[str, tuple[Sample, Sample]] = {}
        for name, spec in PROJECTIONS.items():
            before = sampler.snapshot()
            rebuilt[name] = rebuild(database_url, spec)
            rebuild_windows[name] = (before, sampler.snapshot())
        t_audit0 = time.perf_counter()
        report = verify(database_url)
        t_audit1 = time.perf_counter()
        sampler.snapshot()
        sampler.stop()
        from_scratch = stored_digests(database_url)
        differ = {
            name: sorted(
                table
                for table in set(incremental[name]) | set(from_scratch[name])
                if incremental[name].get(table) != from_scratch[name].get(table)
            )
            for name in PROJECTIONS
        }

        s = times.samples
        ru_maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        appended = monitor.expected
        phases = [
            ("publish (JetStream acked)", n, t_pub),
            ("log append complete (ingest)", appended, t_log),
            *(
                (f"  {name} caught up (projector)", appended, monitor.t_caught_up[name] - times.t0)
                for name in PROJECTIONS
            ),
            ("end to end (projected)", appended, t_e2e),
            *(
                (f"rebuild {name} ({_processes(r.workers)})", r.events, r.seconds)
                for name, r in rebuilt.items()
            ),
            ("audit verify, both read models (in-process)", report.events, t_audit1 - t_audit0),
        ]
        memory = [
            {
                "label": "arbiter ingest (subprocess)",
                "group": "ingest",
                "peak_rss": sampler.peak_rss("ingest"),
            },
            {
                "label": "arbiter project (subprocess)",
                "group": "projector",
                "peak_rss": sampler.peak_rss("projector"),
            },
            {
                "label": "nats-server",
                "group": "nats-server",
                "peak_rss": sampler.peak_rss("nats-server"),
            },
            {"label": "postgres (all processes)", "group": "postgres", "peak_rss": None},
            {
                "label": "rebuild worker (subprocess)",
                "group": WORKER,
                "peak_rss": sampler.peak_rss(WORKER),
            },
            {
                "label": "benchmark (RSS: publishing)",
                "group": "benchmark",
                "peak_rss": sampler.peak_rss("benchmark", times.t0, times.t_published),
            },
            *(
                {
                    "label": f"benchmark: during rebuild {name}",
                    "group": "-",
                    "peak_rss": sampler.peak_rss("benchmark", a.t, b.t),
                }
                for name, (a, b) in rebuild_windows.items()
            ),
            {
                "label": "benchmark: during audit",
                "group": "-",
                "peak_rss": sampler.peak_rss("benchmark", t_audit0, t_audit1),
            },
            {"label": "benchmark: lifetime (ru_maxrss)", "group": "-", "peak_rss": ru_maxrss},
        ]
        machine = machine_info(database_url, times.nats_version, home, load_at_start)
        results: dict[str, Any] = {
            "benchmark": "ingest_rebuild",
            "started_at": started_at.isoformat(),
            "config": {
                "events": n,
                "workload": args.workload,
                "void_window": args.void_window if args.workload == "mixed" else None,
                "competitors": args.competitors,
                "seed": args.seed,
                "chunk": CHUNK,
                "poll_s": POLL_S,
                "sample_s": SAMPLE_S,
                "servers": "external" if external else "embedded",
                "run_id": run_id,
            },
            "machine": machine,
            "results": {
                "phases": [
                    {"phase": p, "events": e, "seconds": round(sec, 3), "rate": rate(e, sec)}
                    for p, e, sec in phases
                ],
                "publish_window_s": round(t_pub, 3),
                "drain_window_s": round(t_e2e - t_pub, 3),
                "generate_s": round(times.generate_s, 3),
                "generated": dict(sorted(times.counts.items())),
                "memory": memory,
                "cpu": {
                    "publish": sampler.cpu_share(s["t0"], s["published"]),
                    "drain": sampler.cpu_share(s["published"], s["projected"]),
                    "ingest_total": sampler.cpu_share(s["t0"], s["projected"]),
                    "rebuild": sampler.cpu_share(
                        next(iter(rebuild_windows.values()))[0],
                        list(rebuild_windows.values())[-1][1],
                    ),
                },
                "rebuild": {
                    name: {
                        "events": r.events,
                        "position": r.position,
                        "generation": r.generation,
                        "seconds": round(r.seconds, 3),
                        "cpu": sampler.cpu_share(*rebuild_windows[name]),
                    }
                    for name, r in rebuilt.items()
                },
                "rebuild_equals_incremental": {
                    name: {"ok": not tables, "differing_tables": tables}
                    for name, tables in differ.items()
                },
                "stored_tables": {
                    name: {table: count for table, (count, _) in digests.items()}
                    for name, digests in from_scratch.items()
                },
                "audit": {
                    "ok": report.ok,
                    "events": report.events,
                    "position": report.position,
                    "mismatches": len(report.mismatches),
                    "digest": report.digest,
                    "first_mismatches": report.mismatches[:20],
                },
                "rejected": times.rejected,
                "rejected_by_code": times.rejected_codes,
                "rejected_examples": times.rejected_examples,
                "duplicates": times.duplicates,
                "services": {
                    svc.name: {
                        "stop_seconds": round(svc.stop_seconds or 0, 3),
                        "exit_code": svc.exit_code,
                    }
                    for svc in services
                },
                "timeline": [
                    {"t": t, "appended": a, "projected": p} for t, a, p in monitor.timeline
                ],
                "caught_up_s": {
                    name: round(t - times.t0, 3) for name, t in monitor.t_caught_up.items()
                },
            },
        }
        print()
        print(render(results))
        if not args.no_json:
            RESULTS_DIR.mkdir(parents=True, exist_ok=True)
            out = RESULTS_DIR / f"ingest_rebuild-{started_at.strftime('%Y%m%dT%H%M%SZ')}.json"
            out.write_text(json.dumps(results, indent=2, default=str) + "\n")
            print(f"\nresults written to {out}")
        ok = report.ok and not any(differ.values())
        keep_home = keep_home or not ok
        return 0 if ok else 1
    except ServiceFailure as exc:
        keep_home = True
        print(f"\nSERVICE FAILURE: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        print(f"\ninterrupted ({exc or 'SIGINT'}); cleaning up", file=sys.stderr)
        return 130
    except BaseException:
        keep_home = True
        raise
    finally:
        # A second Ctrl-C must not cut the cleanup short and leave servers running.
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_IGN)
        sampler.stop()
        for service in services:
            stop_service(service)
        if servers is not None:
            servers.stop()
        if temp_home and not keep_home:
            shutil.rmtree(home, ignore_errors=True)
        elif temp_home:
            print(f"home (logs) kept at {home}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
