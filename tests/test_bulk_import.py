"""``arbiter import`` on its direct path (issue 14): the same log as through NATS, tstamp order,
the judge kind as a flag, gzip and stdin, refused rows with their row numbers, Ctrl-C and rerun.

Real PostgreSQL, real nats-server and the real ingest (for the NATS path), the CLI through
Typer's runner or as a subprocess (for a real SIGINT).
"""

from __future__ import annotations

import csv
import gzip
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest
from arbiter.adapters.arena_files import iter_import
from arbiter.adapters.eventstore import decode_state
from arbiter.services.bulk_import import import_direct
from arbiter.services.cli import app
from arbiter.services.import_order import in_order
from arbiter.services.setup import prepare_database
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from typer.testing import CliRunner

from .helpers import project, running_ingest

ROWS = [  # (model_a, model_b, winner, tstamp, judge): out of tstamp order, with equal stamps
    ("gpt-4", "claude-v1", "model_a", "1700000300", "ann"),
    ("claude-v1", "llama-2", "model_b", "1700000100", "bob"),
    ("llama-2", "gpt-4", "tie", "1700000200", "ann"),
    ("gpt-4", "llama-2", "model_a", "1700000100", "cyd"),
    ("claude-v1", "gpt-4", "tie (bothbad)", "1700000400", ""),
    ("gpt-4", "gpt-4", "model_a", "1700000500", "bob"),  # refused: same model
    ("llama-2", "claude-v1", "model_a", "1700000050", "ann"),
    ("llama-2", "claude-v1", "model_a", "1700000050", "ann"),  # a repeated vote: 2 battles
    ("gpt-4", "claude-v1", "nobody", "1700000600", "cyd"),  # refused: bad winner
    ("claude-v1", "llama-2", "model_a", "1700000100", "dee"),
]


def _write(path: Path, rows: list[tuple[str, ...]] = ROWS) -> Path:
    with path.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["model_a", "model_b", "winner", "tstamp", "judge"])
        out.writerows(rows)
    return path


def _cli(*args: str, input: bytes | None = None) -> Any:
    return CliRunner().invoke(app, list(args), input=input)


@pytest.fixture
def env(database_url: str, nats_url: str, monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    monkeypatch.setenv("ARBITER_DATABASE_URL", database_url)
    monkeypatch.setenv("ARBITER_NATS_URL", nats_url)
    return database_url, nats_url


@pytest.fixture
def other_database(servers: tuple[str, str]) -> Any:
    """A second fresh, migrated database beside ``database_url``."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(servers[0], autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    info = conninfo_to_dict(servers[0])
    info["dbname"] = name
    url = make_conninfo(**info)
    prepare_database(url)
    yield url
    with psycopg.connect(servers[0], autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


def _log(url: str) -> list[tuple[Any, ...]]:
    """Every stored event as the log holds it: position, stream, version, topic, event id,
    digest, type, chain link and the decoded event (the stored state's record time aside)."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT e.notification_id, e.originator_id, e.originator_version, e.topic, "
            "i.event_id, i.digest, i.type, i.chain, e.state FROM arbiter_events e "
            "JOIN arbiter_event_ids i USING (notification_id) ORDER BY e.notification_id"
        ).fetchall()
    return [(*row[:-1], decode_state(bytes(row[-1]))) for row in rows]


def test_direct_path_writes_the_log_the_nats_path_writes(
    env: tuple[str, str], other_database: str, tmp_path: Path
) -> None:
    database_url, nats_url = env
    path = _write(tmp_path / "battles.csv")
    with running_ingest(database_url, nats_url):
        via_nats = _cli("import", str(path), "--arena", "lmsys", "--via-nats")
    assert via_nats.exit_code == 1, via_nats.output
    # Batches of 3 rows: decisions across batch boundaries, and the overlap of decode and append.
    entries = in_order(iter_import(path, arena="lmsys"))
    report = import_direct(other_database, entries, batch_size=3)
    assert (report.read, report.new, report.known, len(report.refused)) == (10, 8, 0, 2)
    nats_log, direct_log = _log(database_url), _log(other_database)
    assert len(nats_log) == 8
    assert direct_log == nats_log


def test_rows_enter_in_tstamp_order_and_rate_as_fastchat_online_elo(
    env: tuple[str, str], tmp_path: Path
) -> None:
    """Rated in tstamp order (stable), FastChat's online Elo at K 4 from 1000 (judge auto:
    weight 1), computed here independently."""
    database_url, _ = env
    setup = tmp_path / "arena.jsonl"
    setup.write_text(
        json.dumps({"type": "arena.configured", "event_id": "cfg", "arena": "lmsys",
                    "occurred_at": "2023-01-01T00:00:00Z", "k": 4, "initial": 1000}) + "\n"
    )  # fmt: skip
    assert _cli("import", str(setup)).exit_code == 0
    result = _cli("import", str(_write(tmp_path / "b.csv")), "--arena", "lmsys", "--judge", "auto")
    assert result.exit_code == 1, result.output
    assert "row 6 (same_model)" in result.output and "row 9 (bad_winner)" in result.output
    with psycopg.connect(database_url) as conn:
        order = [
            decode_state(bytes(s)).meta.get("judge")  # type: ignore[union-attr]
            for (s,) in conn.execute(
                "SELECT state FROM arbiter_events ORDER BY notification_id OFFSET 1"
            )
        ]
    # tstamp order, file order among equal stamps: rows 7, 8, 2, 4, 10, 3, 1, 5
    assert order == ["ann", "ann", "bob", "cyd", "dee", "ann", "ann", None]

    valid = [r for r in ROWS if r[0] != r[1] and r[2] != "nobody"]
    expected: dict[str, float] = {}
    for a, b, winner, _, _ in sorted(valid, key=lambda r: float(r[3])):  # sorted() is stable
        ra, rb = expected.setdefault(a, 1000.0), expected.setdefault(b, 1000.0)
        ea = 1 / (1 + 10 ** ((rb - ra) / 400))
        sa = {"model_a": 1.0, "model_b": 0.0}.get(winner, 0.5)
        expected[a] = ra + 4 * (sa - ea)
        expected[b] = rb + 4 * ((1 - sa) - (1 - ea))
    project(database_url)
    with psycopg.connect(database_url) as conn:
        got = dict(
            conn.execute(
                "SELECT competitor, rating FROM arbiter_ratings.ratings "
                "WHERE arena = 'lmsys' AND category = ''"
            ).fetchall()
        )
    assert got.keys() == expected.keys()
    for name, rating in expected.items():
        assert got[name] == pytest.approx(rating, abs=1e-9), name
    # --keep-order would have given another order, hence other ratings
    keep = [r for r in valid]
    other: dict[str, float] = {}
    for a, b, winner, _, _ in keep:
        ra, rb = other.setdefault(a, 1000.0), other.setdefault(b, 1000.0)
        ea = 1 / (1 + 10 ** ((rb - ra) / 400))
        sa = {"model_a": 1.0, "model_b": 0.0}.get(winner, 0.5)
        other[a], other[b] = ra + 4 * (sa - ea), rb + 4 * (ea - sa)
    assert any(abs(other[n] - expected[n]) > 1e-6 for n in expected)


def _stored(url: str) -> list[Any]:
    with psycopg.connect(url) as conn:
        return [
            decode_state(bytes(s))
            for (s,) in conn.execute("SELECT state FROM arbiter_events ORDER BY notification_id")
        ]


def test_judge_kind_is_a_flag_and_the_judge_column_is_the_person(
    env: tuple[str, str], tmp_path: Path
) -> None:
    database_url, _ = env
    path = _write(tmp_path / "b.csv", ROWS[:2])
    assert _cli("import", str(path), "--arena", "x").exit_code == 0
    assert _cli("import", str(path), "--arena", "y", "--judge", "gpt4-grader").exit_code == 0
    bad = _cli("import", str(path), "--arena", "z", "--judge", "j" * 200)
    assert bad.exit_code == 2 and "--judge" in bad.output
    events = _stored(database_url)
    assert [(e.arena, e.judge, e.meta["judge"]) for e in events] == [
        ("x", "human", "bob"), ("x", "human", "ann"),
        ("y", "gpt4-grader", "bob"), ("y", "gpt4-grader", "ann"),
    ]  # fmt: skip
    # Another judge kind for rows already imported is a conflict, not a second copy.
    again = _cli("import", str(path), "--arena", "x", "--judge", "auto")
    assert again.exit_code == 1 and "2 conflict" in again.output


def test_gzip_and_stdin_and_a_rerun_adds_nothing(env: tuple[str, str], tmp_path: Path) -> None:
    database_url, _ = env
    plain = _write(tmp_path / "b.csv")
    zipped = tmp_path / "b.csv.gz"
    zipped.write_bytes(gzip.compress(plain.read_bytes()))
    first = _cli("import", str(zipped), "--arena", "g")
    assert first.exit_code == 1, first.output
    assert "read 10 row(s)" in first.output and "8 new, 0 already in the log, 2 refused" in (
        first.output
    )
    for data in (plain.read_bytes(), zipped.read_bytes()):
        again = _cli("import", "-", "--arena", "g", input=data)
        assert "0 new, 8 already in the log, 2 refused" in again.output, again.output
    assert len(_stored(database_url)) == 8


def test_ctrl_c_then_rerun_continues_with_nothing_doubled(
    database_url: str, tmp_path: Path
) -> None:
    """A real SIGINT to the import subprocess mid-way; the rerun adds exactly the rest."""
    path = tmp_path / "many.csv"
    rows = 200_000
    with path.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["model_a", "model_b", "winner", "tstamp"])
        for i in range(rows):
            out.writerow([f"m{i % 7}", f"m{(i % 7) + 1}", "model_a", 1_700_000_000 + i])
    env = {**os.environ, "ARBITER_DATABASE_URL": database_url, "ARBITER_NATS_URL": "nats://x"}
    cmd = [sys.executable, "-m", "arbiter.services.cli", "import", str(path), "--keep-order"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    with psycopg.connect(database_url, autocommit=True) as conn:
        count = 0
        while count == 0 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.1)
            count = conn.execute("SELECT count(*) FROM arbiter_events").fetchone()[0]
        proc.send_signal(signal.SIGINT)
        output = proc.communicate(timeout=120)[0].decode()
        assert proc.returncode == 130, output
        assert "interrupted" in output and "continues where this one stopped" in output
        done = conn.execute("SELECT count(*) FROM arbiter_events").fetchone()[0]
    assert 0 < done < rows
    rerun = subprocess.run(cmd, env=env, capture_output=True, timeout=300)
    text = rerun.stdout.decode().replace("\n", "")
    assert rerun.returncode == 0, rerun.stderr.decode()
    assert f"{rows - done} new, {done} already in the log, 0 refused" in text
    with psycopg.connect(database_url) as conn:
        total, distinct = conn.execute(
            "SELECT count(*), count(DISTINCT event_id) FROM arbiter_event_ids"
        ).fetchone()
    assert total == distinct == rows


def test_a_vote_before_its_battle_waits_for_the_end_of_the_file(
    env: tuple[str, str], tmp_path: Path
) -> None:
    """The ingest retries a vote whose battle is missing; the direct path tries it once more
    after the rest of the file, so a battle later in the file still counts it; a vote on a
    battle that never comes is refused ``unknown_target`` with its line number."""
    database_url, _ = env
    at = "2025-01-01T00:00:00Z"
    lines = [
        {"type": "vote.cast", "event_id": "v1", "occurred_at": at, "vote_id": "v1",
         "voter": "ann", "battle_id": "b1", "choice": "a"},
        {"type": "battle.completed", "event_id": "b1", "occurred_at": at, "battle_id": "b1",
         "a": "m1", "b": "m2", "outcome": None},
        {"type": "vote.cast", "event_id": "v2", "occurred_at": at, "vote_id": "v2",
         "voter": "bob", "battle_id": "nowhere", "choice": "b"},
    ]  # fmt: skip
    path = tmp_path / "events.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    result = _cli("import", str(path))
    assert result.exit_code == 1, result.output
    assert "row 3 (unknown_target)" in result.output
    assert "2 new, 0 already in the log, 1 refused" in result.output
    assert [e.event_id for e in _stored(database_url)] == ["b1", "v1"]


def test_every_batch_of_a_long_file_is_counted(database_url: str, tmp_path: Path) -> None:
    """Hundreds of small batches: each one is counted once, whatever addresses their futures
    get (a freed future's id was reused by a later one, which then looked counted: its rows
    were left out of the report and its deferred votes never retried)."""
    at = "2025-01-01T00:00:00Z"
    lines = []
    for i in range(600):
        lines.append(
            {
                "type": "vote.cast",
                "event_id": f"v{i}",
                "occurred_at": at,
                "vote_id": f"v{i}",
                "voter": "ann",
                "battle_id": f"b{i}",
                "choice": "a",
            }
        )
        lines.append({"type": "battle.completed", "event_id": f"b{i}", "occurred_at": at,
                      "battle_id": f"b{i}", "a": "m1", "b": "m2", "outcome": None})  # fmt: skip
    path = tmp_path / "events.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    report = import_direct(database_url, in_order(iter_import(path)), batch_size=3)
    assert (report.read, report.new, report.known, len(report.refused)) == (1200, 1200, 0, 0)
    assert len(_stored(database_url)) == 1200
