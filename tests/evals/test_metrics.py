"""Signal metrics on crafted signals whose answers are known by construction."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("librosa")

from arbiter.evals.audio import Audio
from arbiter.evals.evaluate import signal_metrics
from arbiter.evals.metrics import (
    analyse_frames,
    loudness_metrics,
    silence_metrics,
    snr_db,
    speaking_rate,
)
from arbiter.evals.pitch import pitch_metrics
from arbiter.evals.synthetic import SR, silence, speechlike, tone

pytestmark = pytest.mark.evals


@pytest.mark.parametrize("freq", [110.0, 220.0, 330.0])
def test_pyin_finds_the_frequency_of_a_tone(freq):
    x = tone(freq, 1.0, 0.5)
    fa = analyse_frames(x, SR)
    m = pitch_metrics(x, fa)
    assert m["f0_median_hz"] == pytest.approx(freq, rel=0.02)
    assert m["f0_spread_semitones"] < 0.2
    assert m["voiced_ratio"] > 0.9


def test_intonation_shows_as_semitone_spread():
    flat = speechlike(3.0, f0_hz=150.0, seed=1)
    t = np.arange(flat.shape[0]) / SR
    # A +-6 semitone glide (square-ish steps) must spread far more than the natural contour.
    glide = np.sin(2 * np.pi * 150.0 * 2 ** (6 * np.sign(np.sin(2 * np.pi * t)) / 12) * t)
    spread_flat = pitch_metrics(flat, analyse_frames(flat, SR))["f0_spread_semitones"]
    wide = (0.5 * glide).astype(np.float32)
    spread_wide = pitch_metrics(wide, analyse_frames(wide, SR))["f0_spread_semitones"]
    assert 0.5 < spread_flat < 4.0
    assert spread_wide > 4.0


def test_silent_stretches_give_silence_ratio_and_edges():
    # 0.5 s silence, 1.0 s tone, 0.7 s silence, 1.0 s tone, 0.3 s silence = 3.5 s.
    x = np.concatenate([silence(0.5), tone(220, 1.0), silence(0.7), tone(220, 1.0), silence(0.3)])
    m = silence_metrics(analyse_frames(x, SR))
    assert m["duration_s"] == pytest.approx(3.5)
    assert m["silence_ratio"] == pytest.approx(1.5 / 3.5, abs=0.015)
    assert m["leading_silence_s"] == pytest.approx(0.5, abs=0.02)
    assert m["trailing_silence_s"] == pytest.approx(0.3, abs=0.02)
    assert m["speech_duration_s"] == pytest.approx(2.0, abs=0.05)
    # Inside the utterance (0.5 .. 3.2 s) only the 0.7 s gap is pause: 0.7 / 2.7.
    assert m["pause_ratio"] == pytest.approx(0.7 / 2.7, abs=0.015)


def test_pauses_are_found_under_a_noise_floor():
    rng = np.random.default_rng(0)
    x = np.concatenate([silence(1.0), tone(200, 2.0, 0.3), silence(1.0)])
    x = x + rng.normal(0, 0.003, x.shape[0]).astype(np.float32)  # hiss at about -50 dBFS
    m = silence_metrics(analyse_frames(x, SR))
    assert m["silence_ratio"] == pytest.approx(0.5, abs=0.02)
    assert m["leading_silence_s"] == pytest.approx(1.0, abs=0.03)


def test_short_gaps_inside_speech_are_not_pauses():
    x = np.concatenate([tone(200, 1.0), silence(0.05), tone(200, 1.0)])
    m = silence_metrics(analyse_frames(x, SR))
    assert m["silence_ratio"] == 0.0
    assert m["pause_ratio"] == 0.0


def test_all_silence():
    x = silence(1.0)
    fa = analyse_frames(x, SR)
    m = silence_metrics(fa)
    assert m["silence_ratio"] == 1.0
    assert m["leading_silence_s"] == m["trailing_silence_s"] == pytest.approx(1.0)
    assert "pause_ratio" not in m
    assert snr_db(fa) is None
    assert pitch_metrics(x, fa) == {}


def test_rms_dbfs_of_sine_and_square():
    sine = tone(1000, 1.0, 0.5)
    m = loudness_metrics(sine, analyse_frames(sine, SR))
    assert m["rms_dbfs"] == pytest.approx(20 * np.log10(0.5 / np.sqrt(2)), abs=0.05)  # -9.03
    assert m["peak_dbfs"] == pytest.approx(20 * np.log10(0.5), abs=0.01)
    assert m["dynamic_range_db"] < 1.0
    square = np.where(np.arange(SR) % 32 < 16, 0.25, -0.25).astype(np.float32)
    m = loudness_metrics(square, analyse_frames(square, SR))
    assert m["rms_dbfs"] == pytest.approx(20 * np.log10(0.25), abs=0.01)  # -12.04


def test_active_level_ignores_padding():
    x = np.concatenate([silence(3.0), tone(500, 1.0, 0.5)])
    m = loudness_metrics(x, analyse_frames(x, SR))
    assert m["active_rms_dbfs"] == pytest.approx(-9.03, abs=0.3)
    assert m["rms_dbfs"] == pytest.approx(-9.03 - 10 * np.log10(4), abs=0.1)


@pytest.mark.parametrize("snr", [10.0, 20.0, 30.0])
def test_snr_estimate_on_tone_in_noise(snr):
    rng = np.random.default_rng(7)
    amplitude = 0.3
    noise_rms = (amplitude / np.sqrt(2)) / 10 ** (snr / 20)
    x = np.concatenate([silence(1.0), tone(300, 2.0, amplitude), silence(1.0)])
    x = x + rng.normal(0, noise_rms, x.shape[0]).astype(np.float32)
    assert snr_db(analyse_frames(x, SR)) == pytest.approx(snr, abs=1.0)


def test_clean_clip_snr_is_clamped_not_infinite():
    x = np.concatenate([silence(0.5), tone(300, 1.0)])
    assert snr_db(analyse_frames(x, SR)) == 100.0


def test_speaking_rate_counts_speech_time_only():
    assert speaking_rate(10, 4.0) == pytest.approx(2.5)
    assert speaking_rate(0, 4.0) is None
    assert speaking_rate(5, 0.0) is None


def test_signal_metrics_uses_clipping_from_the_loader():
    x = np.clip(tone(150, 1.0, 1.5), -1, 1)
    m = signal_metrics(Audio.from_array(x, SR), words=3)
    assert m["clipping_ratio"] > 0.3
    assert m["speaking_rate_wps"] == pytest.approx(3 / m["speech_duration_s"])
    assert all(np.isfinite(v) for v in m.values())
