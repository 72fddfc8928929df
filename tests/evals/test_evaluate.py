"""evaluate(): one clip in, a flat dict of finite metrics and a composite out."""

from __future__ import annotations

import math

import numpy as np
import pytest

pytest.importorskip("librosa")

from arbiter.evals.audio import (
    Audio,
    sha256_file,
)
from arbiter.evals.evaluate import clean_metrics, evaluate
from arbiter.evals.synthetic import SR, silence, speechlike

pytestmark = pytest.mark.evals

SIGNAL_KEYS = {
    "duration_s",
    "speech_duration_s",
    "silence_ratio",
    "leading_silence_s",
    "trailing_silence_s",
    "pause_ratio",
    "rms_dbfs",
    "active_rms_dbfs",
    "peak_dbfs",
    "dynamic_range_db",
    "clipping_ratio",
    "snr_db",
    "voiced_ratio",
    "f0_median_hz",
    "f0_spread_semitones",
    "prosody_score",
    "quality_score",
    "composite",
}


def test_file_with_stub_transcriber_and_everything_given(write_audio):
    path = write_audio("clip.flac", speechlike(2.0, seed=9))
    result = evaluate(
        path,
        "the quick brown fox",
        latency_ms=500.0,
        semascore=0.9,
        transcriber=lambda samples: "The quick brown box.",
    )
    m = result.metrics
    assert set(m) >= SIGNAL_KEYS
    assert m["wer"] == pytest.approx(0.25)
    assert m["cer"] == pytest.approx(1 / 19, abs=1e-6)
    assert m["speaking_rate_wps"] == pytest.approx(4 / m["speech_duration_s"], rel=1e-4)
    assert (m["latency_ms"], m["semascore"]) == (500.0, 0.9)
    assert result.transcript == "The quick brown box."
    assert result.audio_sha256 == sha256_file(path)
    assert result.composite.missing == [] and result.composite.renormalised is False
    assert m["composite"] == pytest.approx(result.composite.score, abs=1e-6)
    assert all(isinstance(v, float) and math.isfinite(v) for v in m.values())


def test_without_transcript_or_reference():
    result = evaluate(Audio.from_array(speechlike(1.5), SR), transcribe=False)
    assert "wer" not in result.metrics and "speaking_rate_wps" not in result.metrics
    assert result.transcript is None
    assert result.composite.missing == ["semascore", "wer", "latency"]
    assert set(result.composite.components) == {"prosody", "quality"}


def test_transcript_counts_words_when_there_is_no_reference():
    result = evaluate(Audio.from_array(speechlike(1.5), SR), transcriber=lambda s: "a b c d e f")
    assert "wer" not in result.metrics
    assert result.metrics["speaking_rate_wps"] == pytest.approx(
        6 / result.metrics["speech_duration_s"], rel=1e-4
    )


def test_silent_clip_scores_zero_and_emits_no_nan():
    result = evaluate(Audio.from_array(silence(1.0), SR), "hello", transcriber=lambda s: "")
    m = result.metrics
    assert m["silence_ratio"] == 1.0
    assert m["prosody_score"] == 0.0 and m["quality_score"] == 0.0
    assert m["wer"] == 1.0
    assert "f0_median_hz" not in m and "snr_db" not in m
    assert all(math.isfinite(v) for v in m.values())


def test_noisier_clip_scores_lower_quality():
    clean = evaluate(Audio.from_array(speechlike(3.0, seed=2), SR), transcribe=False)
    noisy = evaluate(
        Audio.from_array(speechlike(3.0, seed=2, noise_dbfs=-25), SR), transcribe=False
    )
    assert noisy.metrics["snr_db"] < clean.metrics["snr_db"] - 20
    assert noisy.metrics["quality_score"] < clean.metrics["quality_score"]


def test_clean_metrics_drops_non_finite_and_rounds():
    raw = {
        "a": float("nan"),
        "b": float("inf"),
        "c": None,
        "d": True,
        "e": 1 / 3,
        "f": -0.0,
        "g": np.float32(2.5),
        "h": 7,
    }
    assert clean_metrics(raw) == {"e": 0.333333, "f": 0.0, "g": 2.5, "h": 7.0}
