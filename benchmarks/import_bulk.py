"""Bulk import throughput: a Chatbot Arena release, file to visible in both read models, beside
the physical floor (a plain COPY of the same rows into an unindexed table of the same PostgreSQL,
in the same run). Issue 14 point 1.

The 2024-08-14 Chatbot Arena battles file is not available offline; its pair counts are
(``../shared/realdata/chatbotarena_20240814_counts.json``, 1,670,250 battles). The file is
rebuilt from them: every count expanded into rows ``model_a, model_b, winner`` (winner
``model_a`` | ``model_b`` | ``tie`` | ``tie (bothbad)``), shuffled with a fixed seed, each row
given a ``tstamp`` one second apart plus a seeded jitter of up to 30 s (so a few percent of the
rows are out of order and the tstamp sort has work to do) and a ``question_id``. Written as CSV.

What is timed, from the moment ``arbiter import`` starts:

* **log**: the import subprocess has exited (every row in the log or refused);
* **visible**: both read models' tracking positions have reached the log's head (the tailing
  ``arbiter project`` subprocess, started and caught up before the import);
* **floor**: ``COPY floor FROM STDIN (FORMAT csv)`` of the same file into a table without
  index or key, timed alone (before the import, so the two do not share the CPUs).

Printed and written to ``benchmarks/results/import_bulk.json``: rows, seconds and rows/s of
each, the ratio of the import's rate (file to visible) to the floor's, the peak RSS of the
import and of the projector, the CPU time per row of the import, of the projector and of
PostgreSQL from the import's start to visible (user + system: far steadier than the rates on a
loaded machine; the projector's start-up, before the import, is left out), and the load average
at start and end (the machine is shared).

    .venv/bin/python benchmarks/import_bulk.py                  # the full 1,670,250 battles
    .venv/bin/python benchmarks/import_bulk.py --rows 200000    # the first N of the same file
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psutil
import psycopg
import stored_floor  # type: ignore[import-not-found]  # beside this script
from arbiter.adapters.embedded import EmbeddedServers
from arbiter.projections import PROJECTIONS, tracking
from arbiter.services.setup import prepare_database

ROOT = Path(__file__).resolve().parents[1]
COUNTS = ROOT.parent / "shared" / "realdata" / "chatbotarena_20240814_counts.json"
WINNERS = ("model_a", "model_b", "tie", "tie (bothbad)")


def write_battles(path: Path, rows: int | None, seed: int) -> int:
    """The release rebuilt from its pair counts (module docstring); returns the rows written."""
    data = json.loads(COUNTS.read_text())
    models = data["models"]
    battles: list[tuple[int, int, int]] = []
    for (i, j), counts in zip(data["X"], data["Y"], strict=True):
        for winner, n in enumerate(counts):
            battles.extend([(i, j, winner)] * n)
    rng = random.Random(seed)
    rng.shuffle(battles)
    if rows is not None:
        battles = battles[:rows]
    start = 1_680_000_000
    with path.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["question_id", "model_a", "model_b", "winner", "tstamp"])
        for n, (i, j, w) in enumerate(battles):
            a, b = (models[i], models[j]) if rng.random() < 0.5 else (models[j], models[i])
            winner = WINNERS[w] if w >= 2 or a == models[i] else WINNERS[1 - w]
            stamp = start + n + rng.random() * 30
            out.writerow([f"q{n:07d}", a, b, winner, f"{stamp:.4f}"])
    return len(battles)


def copy_floor(database_url: str, path: Path) -> float:
    """Seconds for a plain CSV COPY of the file into an unindexed table (the physical floor)."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS bench_floor")
        conn.execute(
            "CREATE TABLE bench_floor (question_id text, model_a text, model_b text, "
            "winner text, tstamp float8)"
        )
        started = time.perf_counter()
        statement = "COPY bench_floor FROM STDIN (FORMAT csv, HEADER)"
        with conn.cursor() as cur, path.open("rb") as f, cur.copy(statement) as copy:
            while chunk := f.read(1 << 20):
                copy.write(chunk)
        seconds = time.perf_counter() - started
        conn.execute("DROP TABLE bench_floor")
    return seconds


def positions(conn: psycopg.Connection[Any]) -> tuple[int, dict[str, int]]:
    head = conn.execute("SELECT coalesce(max(notification_id), 0) FROM arbiter_events")
    with conn.cursor() as cur:
        where = {n: tracking.position(cur, s.schema, n) for n, s in PROJECTIONS.items()}
    return int(head.fetchone()[0]), where  # type: ignore[index]


class PeakRss(threading.Thread):
    """Samples a process's resident set every 0.2 s (its peak)."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.process, self.peak, self.done = psutil.Process(pid), 0, threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            with contextlib.suppress(psutil.Error):
                self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(0.2)


def postgres_cpu() -> float:
    """CPU seconds (user + system) of the embedded PostgreSQL so far: the postmaster, its live
    backends and workers, and the ones it has reaped."""
    total = 0.0
    for child in psutil.Process().children():
        with contextlib.suppress(psutil.Error):
            if child.name().startswith("postgres"):
                times = child.cpu_times()
                total += times.user + times.system + times.children_user + times.children_system
                for backend in child.children(recursive=True):
                    with contextlib.suppress(psutil.Error):
                        total += sum(backend.cpu_times()[:2])
    return total


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(30)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, default=None, help="first N battles (default: all)")
    p.add_argument("--seed", type=int, default=14)
    p.add_argument("--home", type=Path, default=None, help="kept afterwards (default: a temp dir)")
    p.add_argument("--timeout", type=float, default=1800.0)
    p.add_argument(
        "--no-stored-floor", action="store_true",
        help="skip the stored-rows floor (stored_floor.py) after the import",
    )  # fmt: skip
    args = p.parse_args()
    load_start = os.getloadavg()
    home = args.home or Path(tempfile.mkdtemp(prefix="arbiter-import-bench-"))
    servers = EmbeddedServers(home)
    database_url, nats_url = servers.start()
    projector = None
    try:
        prepare_database(database_url)
        path = home / "battles.csv"
        t = time.perf_counter()
        rows = write_battles(path, args.rows, args.seed)
        print(f"file: {rows:,} battles, {path.stat().st_size / 1e6:.0f} MB, written in "
              f"{time.perf_counter() - t:.1f} s (not timed)")  # fmt: skip
        floor_s = copy_floor(database_url, path)
        env = {**os.environ, "ARBITER_DATABASE_URL": database_url, "ARBITER_NATS_URL": nats_url}
        cli = [sys.executable, "-m", "arbiter.services.cli"]
        with (home / "projector.log").open("ab") as log:
            projector = subprocess.Popen(
                [*cli, "project"], env=env, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        projector_rss = PeakRss(projector.pid)
        projector_rss.start()
        time.sleep(5)  # the projector has created its tables and LISTENs
        postgres_started = postgres_cpu()
        projector_started = sum(psutil.Process(projector.pid).cpu_times()[:2])
        started = time.perf_counter()
        with (home / "import.log").open("ab") as log:
            proc = subprocess.Popen([*cli, "import", str(path), "--arena", "lmsys"], env=env,
                                    stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
        import_rss = PeakRss(proc.pid)
        import_rss.start()
        _, status, usage = os.wait4(proc.pid, 0)
        log_s = time.perf_counter() - started
        import_rss.done.set()
        code = os.waitstatus_to_exitcode(status)
        if code != 0:
            sys.exit(f"import exited {code}: {(home / 'import.log').read_text()[-2000:]}")
        with psycopg.connect(database_url, autocommit=True) as conn:
            while True:
                head, where = positions(conn)
                if min(where.values()) >= head:
                    break
                if time.perf_counter() - started > args.timeout or projector.poll() is not None:
                    sys.exit(f"projector did not catch up: head {head}, {where}")
                time.sleep(0.1)
        visible_s = time.perf_counter() - started
        projector_rss.done.set()
        postgres_used = postgres_cpu() - postgres_started
        # CPU seconds per row: unlike the rates, they hardly move with the machine's load.
        projector_cpu = sum(psutil.Process(projector.pid).cpu_times()[:2]) - projector_started
        import_cpu = usage.ru_utime + usage.ru_stime
        floor_rate, rate = rows / floor_s, rows / visible_s
        result = {
            "rows": rows, "log_head": head,
            "import_to_log_s": round(log_s, 2), "import_to_log_rows_s": round(rows / log_s),
            "file_to_visible_s": round(visible_s, 2), "file_to_visible_rows_s": round(rate),
            "copy_floor_s": round(floor_s, 2), "copy_floor_rows_s": round(floor_rate),
            "ratio_to_floor": round(rate / floor_rate, 4),
            "import_peak_rss_mb": round(max(import_rss.peak, usage.ru_maxrss * 1024) / 2**20),
            "projector_peak_rss_mb": round(projector_rss.peak / 2**20),
            "import_cpu_us_per_row": round(import_cpu / rows * 1e6, 1),
            "projector_cpu_us_per_row": round(projector_cpu / rows * 1e6, 1),
            "postgres_cpu_us_per_row": round(postgres_used / rows * 1e6, 1),
            "cpus": os.cpu_count(), "load_at_start": load_start, "load_at_end": os.getloadavg(),
        }  # fmt: skip
        if not args.no_stored_floor:
            _stop(projector)  # the floor is timed alone, as the COPY floor is
            stored = stored_floor.measure(database_url, postgres_cpu)
            result |= {
                "stored_floor_s": stored["seconds"],
                "stored_floor_rows_s": round(rows / stored["seconds"]),
                "stored_floor_ratio_to_copy_floor": round(rows / stored["seconds"] / floor_rate, 4),
                "stored_floor_postgres_cpu_us_per_row": round(
                    stored["postgres_cpu_s"] / rows * 1e6, 1
                ),
                "stored_floor_table_rows": stored["table_rows"],
                "stored_floor_index_entries": stored["index_entries"],
                "import_ratio_to_stored_floor": round(stored["seconds"] / visible_s, 3),
            }
        for key, value in result.items():
            print(f"{key:>36}: {value}")
        out = ROOT / "benchmarks" / "results"
        out.mkdir(exist_ok=True)
        (out / "import_bulk.json").write_text(json.dumps(result, indent=2))
    finally:
        if projector is not None:
            _stop(projector)
        servers.stop()
        if args.home is None:
            shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
