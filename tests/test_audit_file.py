"""``arbiter audit export FILE`` and ``arbiter audit verify --from FILE``: the log behind the
verified read models, in a self-describing file, re-derived with no server at all.

The log is the one of ``test_audit_tables`` (every event type, a private experiment, voids),
projected by the real projectors into a real PostgreSQL. The verification from the file runs in
a subprocess whose environment names no database and no NATS and whose ARBITER_HOME is empty: it
cannot reach a server, so the digest it prints comes from the file alone.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from .test_audit_tables import _log, projected  # noqa: F401 - the fixture

pytestmark = pytest.mark.usefixtures("projected")


def _arbiter(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "arbiter.services.cli", *args],
        env=env, capture_output=True, text=True, timeout=180,
    )  # fmt: skip


def _digest(output: str) -> str:
    (line,) = [x for x in output.splitlines() if x.startswith("digest ")]
    return line.split()[1]


def _chain_head(output: str) -> str:
    (line,) = [x for x in output.splitlines() if x.startswith("chain head ")]
    return line


def _offline(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARBITER_")}
    home = tmp_path / "empty-home"
    home.mkdir(exist_ok=True)
    return {**env, "ARBITER_HOME": str(home)}


@pytest.mark.parametrize("name", ["log.jsonl", "log.jsonl.gz"])
def test_export_then_verify_offline_prints_the_live_digest(
    projected: str,  # noqa: F811
    nats_url: str,
    tmp_path: Path,
    name: str,
) -> None:
    live_env = {**os.environ, "ARBITER_DATABASE_URL": projected, "ARBITER_NATS_URL": nats_url}
    live = _arbiter("audit", "verify", env=live_env)
    assert live.returncode == 0, live.stdout + live.stderr
    path = tmp_path / name
    exported = _arbiter("audit", "export", str(path), env=live_env)
    assert exported.returncode == 0, exported.stdout + exported.stderr
    assert _digest(exported.stdout) == _digest(live.stdout)
    opener = gzip.open if name.endswith(".gz") else open
    with opener(path, "rt") as f:
        header = json.loads(f.readline())
        lines = [json.loads(x) for x in f]
    assert header["format"] == "arbiter-audit-export" and header["version"] == 1
    assert header["events"] == len(lines) == len(_log())
    assert [x["position"] for x in lines] == list(range(1, len(_log()) + 1))
    assert {x["event"]["type"] for x in lines} >= {"battle.completed", "result.voided"}

    env = _offline(tmp_path)
    offline = _arbiter("audit", "verify", "--from", str(path), env=env)
    assert offline.returncode == 0, offline.stdout + offline.stderr
    assert not any(Path(env["ARBITER_HOME"]).iterdir()), "no server was started for it"
    assert _digest(offline.stdout) == _digest(live.stdout)
    assert _chain_head(offline.stdout) == _chain_head(live.stdout)
    assert header["chain"] == _chain_head(live.stdout).split()[2]

    # A second export refuses to overwrite without being asked.
    again = _arbiter("audit", "export", str(path), env=live_env)
    assert again.returncode == 2 and "--overwrite" in again.stderr


def _rewrite(path: Path, edit) -> Path:  # type: ignore[no-untyped-def]
    lines = path.read_text().splitlines()
    out = path.with_name("edited-" + path.name)
    out.write_text("\n".join(edit(lines)) + "\n")
    return out


def test_an_edited_export_fails_offline(
    projected: str,  # noqa: F811
    nats_url: str,
    tmp_path: Path,
) -> None:
    live_env = {**os.environ, "ARBITER_DATABASE_URL": projected, "ARBITER_NATS_URL": nats_url}
    path = tmp_path / "log.jsonl"
    assert _arbiter("audit", "export", str(path), env=live_env).returncode == 0

    def flip_outcome(lines: list[str]) -> list[str]:
        out = []
        for raw in lines:
            record = json.loads(raw)
            if record.get("event", {}).get("battle_id") == "b2":
                record["event"]["outcome"] = "a"
            out.append(json.dumps(record, sort_keys=True, separators=(",", ":")))
        return out

    for edit in (flip_outcome, lambda lines: lines[:5] + lines[6:]):
        edited = _rewrite(path, edit)
        result = _arbiter("audit", "verify", "--from", str(edited), env=_offline(tmp_path))
        assert result.returncode == 1, result.stdout + result.stderr
        assert "MISMATCH" in result.stdout and "chain broken at position" in result.stdout


def test_a_live_state_that_does_not_verify_is_not_exported(
    projected: str,  # noqa: F811
    nats_url: str,
    tmp_path: Path,
) -> None:
    with psycopg.connect(projected, autocommit=True) as conn:
        conn.execute("UPDATE arbiter_ratings.ratings SET wins = wins + 1 WHERE competitor = 'm0'")
    env = {**os.environ, "ARBITER_DATABASE_URL": projected, "ARBITER_NATS_URL": nats_url}
    path = tmp_path / "log.jsonl"
    result = _arbiter("audit", "export", str(path), env=env)
    assert result.returncode == 1 and "not exported" in result.stdout, result.stdout
    assert not path.exists() and not list(tmp_path.glob(".log.jsonl.*"))


def test_a_file_that_is_not_an_export_is_a_usage_error(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    path.write_text('{"hello": 1}\n')
    result = _arbiter("audit", "verify", "--from", str(path), env=_offline(tmp_path))
    assert result.returncode == 2 and "not an Arbiter audit export" in result.stderr
