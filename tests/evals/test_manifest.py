"""Manifest parsing, the parallel runner, and resume without re-evaluation."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

pytest.importorskip("librosa")

from arbiter.evals.manifest import (
    BattleRow,
    DoneState,
    ManifestError,
    TrialRow,
    iter_events,
    read_manifest,
    row_event_id,
    run_manifest,
)
from arbiter.evals.manifest import runner as manifest_module
from arbiter.evals.synthetic import speechlike
from arbiter.evals.whisper_model import MODEL_ENV, WhisperWeightsMissing

pytestmark = pytest.mark.evals

REFERENCE = "one two three four"


def write_csv(path: Path, rows: list[dict]) -> Path:
    columns = sorted({k for r in rows for k in r})
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.fixture
def clips(write_audio):
    """Four short clips: two clean, two noisy (the noisy ones should lose)."""
    return {
        "clean1": write_audio("audio/clean1.wav", speechlike(1.2, seed=1)),
        "clean2": write_audio("audio/clean2.wav", speechlike(1.2, seed=2)),
        "noisy1": write_audio("audio/noisy1.wav", speechlike(1.2, seed=3, noise_dbfs=-22)),
        "noisy2": write_audio("audio/noisy2.wav", speechlike(1.2, seed=4, noise_dbfs=-22)),
    }


@pytest.fixture
def mixed_manifest(tmp_path, clips):
    rows = [
        {
            "kind": "battle",
            "audio_a": "audio/clean1.wav",
            "audio_b": "audio/noisy1.wav",
            "competitor_a": "alpha",
            "competitor_b": "beta",
            "reference": REFERENCE,
            "latency_a_ms": "250",
            "latency_b_ms": "260",
            "arena": "voice",
        },
        {
            "kind": "battle",
            "audio_a": "audio/noisy2.wav",
            "audio_b": "audio/clean2.wav",
            "competitor_a": "beta",
            "competitor_b": "alpha",
            "battle_id": "b-2",
            "category": "support",
        },
        {
            "kind": "trial",
            "audio": "audio/clean1.wav",
            "competitor": "alpha",
            "experiment_id": "exp",
            "trial_id": "t1",
            "prompt_index": "0",
            "ttfb_ms": "120",
            "dim_persona": "calm",
            "metric_mos": "4.1",
            "reference": REFERENCE,
        },
        {
            "kind": "trial",
            "audio": "audio/noisy1.wav",
            "competitor": "beta",
            "experiment_id": "exp",
            "trial_id": "t2",
            "prompt_index": "1",
            "occurred_at": "2025-01-02T03:04:05Z",
        },
    ]
    return write_csv(tmp_path / "manifest.csv", rows)


class Collector:
    def __init__(self, fail_on_call: int | None = None):
        self.batches: list[list[dict]] = []
        self.fail_on_call = fail_on_call

    def __call__(self, batch: list[dict]) -> None:
        if self.fail_on_call is not None and len(self.batches) + 1 == self.fail_on_call:
            raise ConnectionError("NATS went away")
        self.batches.append(batch)

    @property
    def events(self) -> list[dict]:
        return [e for b in self.batches for e in b]


def forbid_evaluation(monkeypatch):
    def boom(*_args, **_kwargs):
        raise AssertionError("a done row was evaluated")

    monkeypatch.setattr(manifest_module, "evaluate_job", boom)


# ------------------------------------------------------------------------------ parsing


def test_csv_rows_are_typed(mixed_manifest, tmp_path):
    rows = read_manifest(mixed_manifest)
    assert [r.kind for r in rows] == ["battle", "battle", "trial", "trial"]
    b, _, t, t2 = rows
    assert isinstance(b, BattleRow) and isinstance(t, TrialRow)
    assert b.audio_a == tmp_path / "audio/clean1.wav"
    assert (b.latency_a_ms, b.latency_b_ms, b.arena, b.line) == (250.0, 260.0, "voice", 2)
    assert b.semascore_a is None and b.category is None
    assert t.prompt_index == 0
    assert t.extra_metrics == {"ttfb_ms": 120.0, "mos": 4.1}
    assert t.dimensions == {"persona": "calm"}
    assert t2.occurred_at == "2025-01-02T03:04:05.000Z"


def test_jsonl_with_nested_objects_and_inferred_kind(tmp_path, clips):
    path = tmp_path / "m.jsonl"
    lines = [
        {
            "audio": "audio/clean1.wav",
            "competitor": "x",
            "experiment_id": "e",
            "trial_id": "1",
            "prompt_index": 2,
            "metrics": {"cost_usd": 0.01},
            "dimensions": {"style": "warm"},
        },
        {
            "audio_a": "audio/clean1.wav",
            "audio_b": "audio/clean2.wav",
            "competitor_a": "x",
            "competitor_b": "y",
            "semascore_a": 0.9,
            "semascore_b": None,
        },
    ]
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n\n")
    trial, battle = read_manifest(path)
    assert isinstance(trial, TrialRow) and isinstance(battle, BattleRow)
    assert trial.extra_metrics == {"cost_usd": 0.01}
    assert trial.dimensions == {"style": "warm"}
    assert (battle.semascore_a, battle.semascore_b) == (0.9, None)


def test_every_bad_row_is_reported_with_its_line(tmp_path):
    rows = [
        {
            "kind": "battle",
            "audio_a": "a.wav",
            "audio_b": "b.wav",
            "competitor_a": "x",
            "competitor_b": "x",
            "latency_ms": "5",
        },
        {
            "kind": "trial",
            "audio": "a.wav",
            "competitor": "x",
            "experiment_id": "e",
            "trial_id": "t",
            "prompt_index": "-1",
        },
        {
            "kind": "trial",
            "audio": "a.wav",
            "competitor": "x",
            "experiment_id": "e",
            "prompt_index": "0",
            "latency_ms": "fast",
        },
        {"kind": "duel"},
    ]
    path = write_csv(tmp_path / "bad.csv", rows)
    with pytest.raises(ManifestError) as info:
        read_manifest(path)
    message = str(info.value)
    assert "bad.csv:2: unknown column(s) for a battle row: latency_ms" in message
    assert "competitor_a and competitor_b must differ" in message
    assert "bad.csv:3: " in message and "prompt_index must be an integer >= 0" in message
    assert "bad.csv:4: " in message and "missing required column 'trial_id'" in message
    assert "latency_ms must be a number" in message
    assert "bad.csv:5: kind must be" in message


def test_unknown_format_and_missing_file(tmp_path):
    (tmp_path / "m.txt").write_text("x")
    with pytest.raises(ManifestError, match="unknown manifest format"):
        read_manifest(tmp_path / "m.txt")
    with pytest.raises(ManifestError, match="no such manifest"):
        read_manifest(tmp_path / "absent.csv")


# ------------------------------------------------------------------------------ running


def test_run_publishes_ordered_events_and_records_state(mixed_manifest, tmp_path, clips):
    publish = Collector()
    state = tmp_path / "state" / "done.txt"
    seen: list[tuple[int, int]] = []
    summary = run_manifest(
        mixed_manifest,
        publish,
        state_path=state,
        workers=0,
        transcribe=False,
        batch_size=3,
        progress=lambda n, total: seen.append((n, total)),
    )
    events = publish.events
    assert (summary.total, summary.published, summary.skipped, summary.errors) == (4, 4, 0, [])
    assert [len(b) for b in publish.batches] == [3, 1]
    assert [e["type"] for e in events] == ["battle.completed"] * 2 + ["trial.completed"] * 2
    first, second, t1, t2 = events
    assert (first["a"], first["outcome"], first["arena"]) == ("alpha", "a", "voice")
    assert (second["a"], second["outcome"], second["battle_id"]) == ("beta", "b", "b-2")
    assert second["category"] == "support"
    assert first["metrics"]["a"]["latency_ms"] == 250.0
    assert first["meta"]["auto_judge"]["missing"] == ["semascore", "wer"]
    assert t1["metrics"]["ttfb_ms"] == 120.0 and t1["metrics"]["mos"] == 4.1
    assert t1["metrics"]["speaking_rate_wps"] > 0  # word count from the reference
    assert t1["dimensions"] == {"persona": "calm"}
    assert t2["occurred_at"] == "2025-01-02T03:04:05.000Z"
    mtime = max(clips["clean1"].stat().st_mtime, clips["noisy1"].stat().st_mtime)
    assert first["occurred_at"] == (
        datetime.fromtimestamp(mtime, UTC).isoformat(timespec="milliseconds")[:-6] + "Z"
    )
    assert DoneState(state).load() == {e["event_id"] for e in events}
    assert seen[-1] == (4, 4) and [n for n, _ in seen] == [1, 2, 3, 4]
    for event in events:
        json.dumps(event, allow_nan=False)


def test_rerun_skips_done_rows_without_evaluating(mixed_manifest, tmp_path, monkeypatch):
    state = tmp_path / "done.txt"
    first = Collector()
    run_manifest(mixed_manifest, first, state_path=state, workers=0, transcribe=False)
    forbid_evaluation(monkeypatch)
    again = Collector()
    summary = run_manifest(mixed_manifest, again, state_path=state, workers=0, transcribe=False)
    assert again.events == []
    assert (summary.skipped, summary.published) == (4, 0)
    # The caller's own set of published ids works the same way, without a state file.
    ids = {e["event_id"] for e in first.events}
    summary = run_manifest(mixed_manifest, Collector(), done=ids, workers=0, transcribe=False)
    assert summary.skipped == 4


def test_publish_failure_resumes_after_the_last_published_batch(mixed_manifest, tmp_path):
    state = tmp_path / "done.txt"
    failing = Collector(fail_on_call=2)
    with pytest.raises(ConnectionError):
        run_manifest(
            mixed_manifest, failing, state_path=state, batch_size=2, workers=0, transcribe=False
        )
    assert len(DoneState(state).load()) == 2
    rest = Collector()
    summary = run_manifest(
        mixed_manifest, rest, state_path=state, batch_size=2, workers=0, transcribe=False
    )
    assert (summary.skipped, summary.published) == (2, 2)
    assert [e["type"] for e in rest.events] == ["trial.completed"] * 2
    assert {e["event_id"] for e in failing.events} | {
        e["event_id"] for e in rest.events
    } == DoneState(state).load()


def test_event_ids_are_computable_before_evaluation(mixed_manifest, monkeypatch):
    forbid_evaluation(monkeypatch)
    rows = read_manifest(mixed_manifest)
    ids = [row_event_id(r) for r in rows]
    assert len(set(ids)) == 4
    assert ids == [row_event_id(r) for r in read_manifest(mixed_manifest)]


def test_bad_audio(tmp_path, clips):
    (tmp_path / "audio" / "broken.wav").write_bytes(b"definitely not audio")
    rows = [
        {
            "kind": "trial",
            "audio": "audio/broken.wav",
            "competitor": "x",
            "experiment_id": "e",
            "trial_id": "t1",
            "prompt_index": "0",
            "ttfb_ms": "80",
        },
        {
            "kind": "trial",
            "audio": "audio/missing.wav",
            "competitor": "x",
            "experiment_id": "e",
            "trial_id": "t2",
            "prompt_index": "0",
        },
        {
            "kind": "battle",
            "audio_a": "audio/broken.wav",
            "audio_b": "audio/clean1.wav",
            "competitor_a": "x",
            "competitor_b": "y",
        },
        {
            "kind": "trial",
            "audio": "audio/clean2.wav",
            "competitor": "x",
            "experiment_id": "e",
            "trial_id": "t3",
            "prompt_index": "0",
        },
        {
            "kind": "trial",
            "audio": "audio/clean2.wav",
            "competitor": "x",
            "experiment_id": "e",
            "trial_id": "t3",
            "prompt_index": "0",
        },
    ]
    outcomes = list(
        iter_events(read_manifest(write_csv(tmp_path / "m.csv", rows)), workers=0, transcribe=False)
    )
    failed, missing, battle, ok, duplicate = outcomes
    assert failed.status == "evaluated"
    assert failed.event["status"] == "failed" and "cannot decode" in failed.event["error"]
    assert failed.event["metrics"] == {"ttfb_ms": 80.0}
    assert missing.status == "error" and "no such audio file" in missing.error
    assert battle.status == "error" and "AudioLoadError" in battle.error
    assert ok.status == "evaluated" and ok.event["status"] == "completed"
    assert duplicate.status == "skipped" and duplicate.event_id == ok.event_id


def test_missing_whisper_weights_fail_before_any_work(mixed_manifest, monkeypatch, tmp_path):
    monkeypatch.setenv(MODEL_ENV, str(tmp_path / "absent.pt"))
    forbid_evaluation(monkeypatch)
    with pytest.raises(WhisperWeightsMissing):
        run_manifest(mixed_manifest, Collector(), workers=0, transcribe=True)


def test_worker_processes_load_whisper_and_match_in_process_results(mixed_manifest, whisper_env):
    pooled = Collector()
    summary = run_manifest(mixed_manifest, pooled, workers=2, transcribe=True)
    assert summary.published == 4 and summary.errors == []
    battle = pooled.events[0]
    assert set(battle["meta"]["transcripts"]) == {"a", "b"}
    assert battle["meta"]["whisper_model"] == whisper_env.name
    assert "wer" in battle["metrics"]["a"]
    # Signal metrics do not depend on the process that computed them.
    local = Collector()
    run_manifest(mixed_manifest, local, workers=0, transcribe=False)
    for p, q in zip(pooled.events, local.events, strict=True):
        assert p["event_id"] == q["event_id"]
        pm = p["metrics"]["a"] if p["type"] == "battle.completed" else p["metrics"]
        qm = q["metrics"]["a"] if q["type"] == "battle.completed" else q["metrics"]
        for key in ("duration_s", "silence_ratio", "f0_median_hz", "snr_db", "quality_score"):
            assert pm[key] == qm[key]
