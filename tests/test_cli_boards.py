"""``arbiter leaderboard`` and ``arbiter audit explain`` through the real console command (a
subprocess on the fixtures' PostgreSQL and NATS): the leaderboard shows the numbers ``GET
/leaderboard`` serves (Elo and Bradley-Terry, ``--as-of``, ``--category``, ``--metrics``, its
``--json`` the API's body), refuses bad values as usage errors, and the explanation fits 80
columns without cutting a value."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any

import pytest
from arbiter.services.api import create_app
from litestar.testing import AsyncTestClient

from .api_events import battle, registered, seed


@pytest.fixture
async def client(database_url: str) -> AsyncIterator[AsyncTestClient[Any]]:
    async with AsyncTestClient(app=create_app(database_url, None)) as c:
        yield c


def _cli(
    database_url: str, nats_url: str, *args: str, columns: int = 200
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARBITER_")}
    env.update(
        ARBITER_DATABASE_URL=database_url, ARBITER_NATS_URL=nats_url, COLUMNS=str(columns),
        TERM="dumb", NO_COLOR="1",
    )  # fmt: skip
    return subprocess.run(
        [sys.executable, "-m", "arbiter.services.cli", *args],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


EVENTS = [
    registered("alpha-model", name="Alpha"),
    battle("b1", "alpha-model", "beta-model", "a", at=1, metrics={"a": {"wer": 0.125}}),
    battle("b2", "alpha-model", "gamma-model", "a", at=2, category="code"),
    battle("b3", "beta-model", "gamma-model", "tie", at=3,
           metrics={"a": {"wer": 0.25, "latency_ms": 340}}),
    battle("b4", "gamma-model", "alpha-model", "a", at=4, category="code"),
    battle("b5", "beta-model", "alpha-model", "b", at=5),
    battle("b6", "gamma-model", "beta-model", "a", at=6, category="code"),
]  # fmt: skip


def _table_numbers(out: str, body: dict[str, Any], metrics: bool = False) -> None:
    """Every row of the API's body is a line of the table with its numbers as the CLI rounds
    them: rating (and interval) to 0.1, counters exact, averages to 4 significant digits."""
    lines = out.splitlines()
    assert body["rows"]
    for row in body["rows"]:
        (line,) = [ln for ln in lines if f" {row['competitor']} " in ln]
        cells = line.replace("│", " ").split()
        assert cells[0] == str(row["rank"]) and f"{row['rating']:.1f}" in cells, (line, row)
        if body["system"] == "bt":
            assert f"{row['lower']:.1f} .. {row['upper']:.1f}" in line, (line, row)
        counters = [str(row[k]) for k in ("games", "wins", "losses", "ties")]
        assert " ".join(counters) in " ".join(cells), (line, row)
        if metrics:
            for value in row["metrics"].values():
                assert f"{value:.4g}" in cells, (line, row)


@pytest.mark.parametrize("system", ["elo", "bt"])
async def test_leaderboard_shows_the_api_numbers(
    database_url: str, nats_url: str, client: AsyncTestClient[Any], system: str
) -> None:
    seed(database_url, EVENTS)
    cases: list[tuple[dict[str, str], list[str]]] = [
        ({}, []),
        ({"category": "code"}, ["--category", "code"]),
        ({"as_of": "3"}, ["--as-of", "3"]),
        ({"as_of": "2025-01-01T00:03:30Z"}, ["--as-of", "2025-01-01T00:03:30Z"]),
        ({"category": "code", "as_of": "4"}, ["--category", "code", "--as-of", "4"]),
    ]
    for params, flags in cases:
        query = {"system": system, "limit": "20", **params}
        r = await client.get("/leaderboard", params=query)
        assert r.status_code == 200, r.text
        body = r.json()
        printed = _cli(database_url, nats_url, "leaderboard", "--system", system, *flags, "--json")
        assert printed.returncode == 0, printed.stderr
        # The same body, field for field: nothing differs for the same parameters and data.
        assert json.loads(printed.stdout) == body, flags
        table = _cli(database_url, nats_url, "leaderboard", "--system", system, "--metrics", *flags)
        assert table.returncode == 0, table.stderr
        _table_numbers(table.stdout, body, metrics=True)
        if "as_of" in params:
            assert f"as of position {body['as_of']}" in table.stdout
    # --metrics adds the averages' columns, named as the API names them.
    plain = _cli(database_url, nats_url, "leaderboard", "--system", system)
    assert "wer" not in plain.stdout and "latency_ms" not in plain.stdout
    with_metrics = _cli(database_url, nats_url, "leaderboard", "--system", system, "--metrics")
    assert "wer" in with_metrics.stdout and "latency_ms" in with_metrics.stdout
    assert "0.125" in with_metrics.stdout and "340" in with_metrics.stdout


def test_leaderboard_refuses_bad_values_naming_what_is_accepted(
    database_url: str, nats_url: str
) -> None:
    seed(database_url, EVENTS)
    bad = _cli(database_url, nats_url, "leaderboard", "--system", "glicko")
    assert bad.returncode == 2 and "elo, bt" in bad.stderr, bad.stderr
    for as_of in ("yesterday", "2025-01-01T00:00:00", "-1"):
        bad = _cli(database_url, nats_url, "leaderboard", "--as-of", as_of)
        assert bad.returncode == 2, (as_of, bad.stdout)
        assert "--as-of" in bad.stderr and "RFC 3339" in bad.stderr, bad.stderr


LONG = "a-competitor-with-a-rather-long-name"


def test_explain_fits_80_columns_with_every_value(database_url: str, nats_url: str) -> None:
    seed(
        database_url,
        [
            battle(f"battle-number-{i:02d}-of-the-evening", LONG, f"opponent-{i}",
                   "a" if i % 2 else "b", at=i, category="long-category")
            for i in range(1, 6)
        ],
    )  # fmt: skip
    out = _cli(database_url, nats_url, "audit", "explain", LONG, columns=80)
    assert out.returncode == 0, out.stderr
    assert "…" not in out.stdout and "..." not in out.stdout, out.stdout
    assert max(len(line) for line in out.stdout.splitlines()) <= 80, out.stdout
    as_json = _cli(database_url, nats_url, "audit", "explain", LONG, "--json")
    assert as_json.returncode == 0, as_json.stderr
    body = json.loads(as_json.stdout)
    assert body["competitor"] == LONG and body["total"] == 10 and len(body["changes"]) == 10
    cells = out.stdout.split()
    for change in body["changes"]:
        values = [
            str(change["position"]), change["kind"], change["event_id"],
            change["occurred_at"], change["arena"],
            change["category"] or "(all)", change["opponent"], f"{change['score']:g}",
            f"{change['expected']:.4f}", f"{change['k']:g}", f"{change['before']:.4f}",
            f"{change['after']:.4f}", f"{change['delta']:+.4f}",
        ]  # fmt: skip
        for value in values:
            assert value in cells, (value, out.stdout)
        assert change["after"] - change["before"] == change["delta"]
    # Each battle changes the arena-wide pool and its category's: two changes, two finals.
    assert [(f["category"], f["rating"]) for f in body["finals"]] == [
        ("", body["changes"][-2]["after"]),
        ("long-category", body["changes"][-1]["after"]),
    ] or [(f["category"], f["rating"]) for f in body["finals"]] == [
        ("", body["changes"][-1]["after"]),
        ("long-category", body["changes"][-2]["after"]),
    ]

    # --limit N: the last N changes (the most recent), oldest first.
    last = _cli(database_url, nats_url, "audit", "explain", LONG, "--limit", "3", columns=80)
    assert last.returncode == 0, last.stderr
    assert "last 3 of 10" in last.stdout
    shown = [c["event_id"] for c in body["changes"]]
    assert set(shown[-3:]) == {"ev-battle-number-04-of-the-evening",
                               "ev-battle-number-05-of-the-evening"}  # fmt: skip
    assert all(e in last.stdout for e in shown[-3:]), last.stdout
    assert not any(e in last.stdout for e in set(shown) - set(shown[-3:])), last.stdout
    last_json = json.loads(
        _cli(database_url, nats_url, "audit", "explain", LONG, "--limit", "3", "--json").stdout
    )
    assert last_json["changes"] == body["changes"][-3:] and last_json["total"] == 10
