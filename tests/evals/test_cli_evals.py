"""``arbiter evals battle | trial | run`` as a user runs them: a real process, real NATS and
PostgreSQL, events ingested and folded by the real pipeline."""

from __future__ import annotations

import asyncio
import csv
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg
import pytest

pytest.importorskip("librosa")

from arbiter.adapters.bus import STREAM, connect
from arbiter.evals.synthetic import speechlike

from ..helpers import ingest_all, project

pytestmark = pytest.mark.evals


def cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 240
) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "arbiter.services.cli", "evals", *args],
                          env=env, capture_output=True, text=True, timeout=timeout)  # fmt: skip


@pytest.fixture
def env(database_url: str, nats_url: str) -> dict[str, str]:
    """The environment of a user pointed at the test servers (no terminal colours)."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("ARBITER_")}
    environ.update(ARBITER_DATABASE_URL=database_url, ARBITER_NATS_URL=nats_url, NO_COLOR="1",
                   COLUMNS="200", TERM="dumb")  # fmt: skip
    return environ


@pytest.fixture
def clips(write_audio: Any) -> dict[str, Path]:
    """A clean clip and a noisy one: the noisy one loses on quality."""
    return {
        "clean": write_audio("clips/clean.wav", speechlike(2.0, seed=1)),
        "clean2": write_audio("clips/clean2.wav", speechlike(2.0, seed=5)),
        "noisy": write_audio("clips/noisy.wav", speechlike(2.0, seed=2, noise_dbfs=-22)),
        "noisy2": write_audio("clips/noisy2.wav", speechlike(2.0, seed=6, noise_dbfs=-22)),
    }


async def _stream_count(nats_url: str) -> int:
    from nats.js.errors import NotFoundError

    nc = await connect(nats_url, max_reconnect_attempts=1)
    try:
        return int((await nc.jetstream().stream_info(STREAM)).state.messages)
    except NotFoundError:
        return 0
    finally:
        await nc.close()


def stream_count(nats_url: str) -> int:
    return asyncio.run(_stream_count(nats_url))


def ingest(database_url: str, nats_url: str, expect: int) -> None:
    """Run the real ingest until ``expect`` messages are handled, then fold the ratings."""
    asyncio.run(ingest_all(database_url, nats_url, [], expect=expect))
    project(database_url)


def ratings(database_url: str, arena: str) -> dict[str, tuple[float, int]]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT competitor, rating, games FROM arbiter_ratings.ratings "
            "WHERE arena = %s AND category = ''",
            (arena,),
        ).fetchall()
    return {c: (r, g) for c, r, g in rows}


def logged_events(database_url: str) -> list[str]:
    with psycopg.connect(database_url) as conn:
        return [r[0] for r in conn.execute("SELECT event_id FROM public.arbiter_event_ids")]


def test_judged_battle_moves_elo(env, database_url, nats_url, clips):
    args = [str(clips["clean"]), str(clips["noisy"]), "--a", "alpha", "--b", "beta",
            "--latency-a", "200", "--latency-b", "800", "--arena", "voice"]  # fmt: skip
    done = cli("battle", *args, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "verdict: a (alpha) wins" in done.stdout
    assert "not measured: semascore, wer (counted 0, as seed 000 does)" in done.stdout
    event_id = done.stdout.split("event_id ")[1].split()[0]
    assert event_id.startswith("evals-battle-")

    ingest(database_url, nats_url, expect=1)
    board = ratings(database_url, "voice")
    assert board["alpha"][0] > 1500 > board["beta"][0]
    assert board["alpha"][0] - 1500 == pytest.approx(16.0)  # K 32 x auto weight 1.0 x (1 - 0.5)
    assert board["alpha"][1] == board["beta"][1] == 1
    assert event_id in logged_events(database_url)

    # The same command again: same id and content, so nothing counts twice.
    again = cli("battle", *args, env=env)
    assert again.returncode == 0, again.stdout + again.stderr
    assert event_id in again.stdout and "already published" in again.stdout
    ingest(database_url, nats_url, expect=0)
    assert ratings(database_url, "voice") == board


def test_seed_rule_by_default_renormalise_on_request(env, nats_url, clips):
    """Issue 13's example through the CLI: the same audio on both sides, semascore 0.80 against
    0.74 and nothing else measured apart: 0.018 apart by seed 000's rule (a tie, as the fold of
    an opted-in arena decides it), a win for a when the weights are renormalised."""
    from arbiter.domain.composite import judge

    args = [str(clips["clean"]), str(clips["clean"]), "--a", "x", "--b", "y",
            "--semascore-a", "0.80", "--semascore-b", "0.74", "--dry-run"]  # fmt: skip
    seed = cli("battle", *args, env=env)
    assert seed.returncode == 0, seed.stderr
    event = json.loads(seed.stdout)
    assert event["outcome"] == "tie" and event["meta"]["auto_judge"]["renormalised"] is False
    verdict = judge(event["metrics"]["a"], event["metrics"]["b"])
    assert verdict is not None and verdict.outcome == "tie"
    assert "counted 0, as seed 000 does" in seed.stderr
    renormalised = cli("battle", *args, "--renormalise", env=env)
    assert renormalised.returncode == 0, renormalised.stderr
    event = json.loads(renormalised.stdout)
    assert event["outcome"] == "a" and event["meta"]["auto_judge"]["renormalised"] is True
    assert "weights renormalised" in renormalised.stderr
    assert stream_count(nats_url) == 0


def test_dry_run_prints_the_event_and_publishes_nothing(env, nats_url, clips):
    done = cli("battle", str(clips["noisy"]), str(clips["clean"]), "--a", "x", "--b", "y",
               "--category", "support", "--scenario", "refund", "--dry-run", env=env)  # fmt: skip
    assert done.returncode == 0, done.stderr
    event = json.loads(done.stdout)
    assert event["type"] == "battle.completed" and event["judge"] == "auto"
    assert event["outcome"] == "b"
    assert event["category"] == "support" and event["scenario"] == "refund"
    assert set(event["metrics"]) == {"a", "b"}
    assert "quality_score" in event["metrics"]["a"] and "composite" in event["metrics"]["b"]
    assert "verdict: b (y) wins" in done.stderr

    trial = cli("trial", str(clips["clean"]), "--competitor", "x", "--experiment", "exp-1",
                "--trial-id", "t-1", "--prompt-index", "3", "--latency", "250",
                "--dimension", "persona=calm", "--metric", "cost_usd=0.002", "--dry-run",
                env=env)  # fmt: skip
    assert trial.returncode == 0, trial.stderr
    event = json.loads(trial.stdout)
    assert event["type"] == "trial.completed" and event["status"] == "completed"
    assert (event["experiment_id"], event["trial_id"], event["prompt_index"]) == ("exp-1", "t-1", 3)
    assert event["metrics"]["latency_ms"] == 250 and event["metrics"]["cost_usd"] == 0.002
    assert event["metrics"]["duration_s"] == pytest.approx(2.0)
    assert event["dimensions"] == {"persona": "calm"}
    assert stream_count(nats_url) == 0


def test_trial_is_published_and_ingested(env, database_url, nats_url, clips):
    args = [str(clips["clean"]), "--competitor", "x", "--experiment", "exp-1",
            "--trial-id", "t-1", "--prompt-index", "0"]  # fmt: skip
    done = cli("trial", *args, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "published trial.completed event_id evals-trial-" in done.stdout
    event_id = done.stdout.split("event_id ")[1].split()[0]
    assert stream_count(nats_url) == 1
    ingest(database_url, nats_url, expect=1)
    assert logged_events(database_url) == [event_id]


def test_trial_transcribes_with_whisper(env, clips, whisper_env):
    """The real whisper.load_model(path) path, on the random-weight checkpoint."""
    env.update(ARBITER_WHISPER_MODEL=str(whisper_env), ARBITER_WHISPER_LANGUAGE="en")
    done = cli("trial", str(clips["clean"]), "--competitor", "x", "--experiment", "e",
               "--trial-id", "t", "--prompt-index", "0", "--reference", "one two three",
               "--dry-run", env=env)  # fmt: skip
    assert done.returncode == 0, done.stderr
    metrics = json.loads(done.stdout)["metrics"]
    assert metrics["wer"] >= 0 and metrics["cer"] >= 0


def test_usage_and_configuration_errors_exit_2(env, clips, tmp_path):
    missing = cli("battle", str(clips["clean"]), str(tmp_path / "nope.wav"), "--a", "x",
                  "--b", "y", env=env)  # fmt: skip
    assert missing.returncode == 2 and "no such audio file" in missing.stderr

    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"this is not audio" * 100)
    undecodable = cli("battle", str(clips["clean"]), str(junk), "--a", "x", "--b", "y",
                      "--dry-run", env=env)  # fmt: skip
    assert undecodable.returncode == 2 and "cannot decode audio" in undecodable.stderr

    same = cli("battle", str(clips["clean"]), str(clips["noisy"]), "--a", "x", "--b", "x", env=env)
    assert same.returncode == 2 and "different competitors" in same.stderr

    env["ARBITER_WHISPER_MODEL"] = str(tmp_path / "no-such-model.pt")
    weights = cli("battle", str(clips["clean"]), str(clips["noisy"]), "--a", "x", "--b", "y",
                  "--reference", "hello", env=env)  # fmt: skip
    assert weights.returncode == 2
    assert "ARBITER_WHISPER_MODEL" in weights.stderr and "no-such-model.pt" in weights.stderr

    bad_manifest = tmp_path / "m.csv"
    bad_manifest.write_text("audio,competitor\nx.wav,a\n")
    manifest = cli("run", str(bad_manifest), env=env)
    assert manifest.returncode == 2 and "missing required column" in manifest.stderr


def test_missing_extra_is_a_clear_exit_2(env, clips):
    """Without librosa the command says what to install (the CLI itself still runs)."""
    code = (
        "import sys; sys.modules['librosa'] = None\n"
        "from arbiter.services.cli import main\n"
        f"sys.argv = ['arbiter', 'evals', 'battle', {str(clips['clean'])!r}, "
        f"{str(clips['noisy'])!r}, '--a', 'x', '--b', 'y']\n"
        "main()\n"
    )
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "pip install -e '.[evals]'" in done.stderr and "librosa" in done.stderr


def test_core_cli_imports_without_the_extra():
    code = (
        "import sys\n"
        "import arbiter.services.cli, arbiter.services.cli.evals, arbiter.services.api\n"
        "heavy = {'librosa', 'torch', 'whisper', 'soundfile'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr


def write_manifest(path: Path, rows: list[dict[str, str]]) -> Path:
    columns = sorted({k for r in rows for k in r})
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return path


def battle_row(a_clip: str, b_clip: str, a: str, b: str, **extra: str) -> dict[str, str]:
    row = {"kind": "battle", "audio_a": a_clip, "audio_b": b_clip, "competitor_a": a,
           "competitor_b": b, "arena": "voice", "occurred_at": "2025-05-01T10:00:00Z"}  # fmt: skip
    row.update(extra)
    return row


def test_run_twice_publishes_each_event_once(env, database_url, nats_url, clips, tmp_path):
    manifest = write_manifest(
        tmp_path / "manifest.csv",
        [
            battle_row("clips/clean.wav", "clips/noisy.wav", "alpha", "beta", latency_a_ms="300"),
            battle_row("clips/noisy2.wav", "clips/clean2.wav", "beta", "gamma"),
            {
                "kind": "trial",
                "audio": "clips/clean.wav",
                "competitor": "alpha",
                "experiment_id": "exp",
                "trial_id": "t1",
                "prompt_index": "0",
            },
        ],
    )
    first = cli("run", str(manifest), "--workers", "2", env=env)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "3 rows: published 3, skipped 0 already done, 0 not evaluated" in first.stdout
    assert "evaluating" in first.stderr  # the progress bar
    assert stream_count(nats_url) == 3
    state = Path(str(manifest) + ".published")
    assert len(state.read_text().split()) == 3

    second = cli("run", str(manifest), env=env)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "3 rows: published 0, skipped 3 already done" in second.stdout
    assert stream_count(nats_url) == 3
    ingest(database_url, nats_url, expect=3)  # all three are accepted into the log
    assert sorted(logged_events(database_url)) == sorted(state.read_text().split())


def test_run_resumes_from_the_event_store(env, database_url, nats_url, clips, tmp_path):
    """Without its state file, a rerun still skips what the log already holds."""
    manifest = write_manifest(
        tmp_path / "battles.csv",
        [
            battle_row("clips/clean.wav", "clips/noisy.wav", "alpha", "beta"),
            battle_row("clips/noisy2.wav", "clips/clean2.wav", "beta", "gamma"),
        ],
    )
    first = cli("run", str(manifest), "--workers", "0", env=env)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "published 2" in first.stdout
    ingest(database_url, nats_url, expect=2)
    board = ratings(database_url, "voice")
    assert board["alpha"][0] > 1500 and board["gamma"][0] > 1500 and board["beta"][0] < 1500

    Path(str(manifest) + ".published").unlink()
    second = cli("run", str(manifest), env=env)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "2 rows: published 0, skipped 2 already done" in second.stdout
    assert stream_count(nats_url) == 2


def test_run_reports_bad_rows_and_exits_1(env, nats_url, clips, tmp_path):
    manifest = write_manifest(
        tmp_path / "partly.csv",
        [
            battle_row("clips/clean.wav", "clips/noisy.wav", "alpha", "beta"),
            battle_row("clips/clean.wav", "clips/missing.wav", "alpha", "gamma"),
        ],
    )
    done = cli("run", str(manifest), "--workers", "0", env=env)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "published 1" in done.stdout and "1 not evaluated" in done.stdout
    assert "missing.wav: no such audio file" in done.stderr
    assert stream_count(nats_url) == 1
