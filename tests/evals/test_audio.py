"""Loading audio files into the canonical 16 kHz mono float32 form."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("soundfile")
pytest.importorskip("librosa")

from arbiter.evals.audio import (
    TARGET_SR,
    Audio,
    AudioLoadError,
    clipping_ratio,
    load_audio,
    sha256_file,
)
from arbiter.evals.synthetic import tone

pytestmark = pytest.mark.evals


def test_wav_at_16k_mono_round_trips(write_audio):
    x = tone(440, 1.0, 0.25)
    audio = load_audio(write_audio("a.wav", x, subtype="FLOAT"))
    assert audio.sample_rate == TARGET_SR
    assert audio.samples.dtype == np.float32
    assert audio.samples.ndim == 1
    np.testing.assert_allclose(audio.samples, x, atol=1e-6)
    assert audio.duration_s == pytest.approx(1.0)


def test_stereo_44k_flac_is_downmixed_and_resampled(write_audio):
    left = tone(300, 2.0, 0.4, sr=44_100)
    stereo = np.stack([left, np.zeros_like(left)], axis=1)
    audio = load_audio(write_audio("s.flac", stereo, sr=44_100))
    assert audio.source_sample_rate == 44_100
    assert audio.source_channels == 2
    assert audio.sample_rate == TARGET_SR
    assert audio.samples.shape[0] == pytest.approx(2 * TARGET_SR, abs=2)
    # Mono is the channel mean: a 0.4 sine in one channel becomes 0.2 peak.
    assert np.abs(audio.samples).max() == pytest.approx(0.2, abs=0.01)


def test_mp3_decodes_when_libsndfile_supports_it(write_audio):
    try:
        path = write_audio("m.mp3", tone(200, 1.0, 0.3), subtype="MPEG_LAYER_III")
    except Exception as exc:  # libsndfile built without an MP3 encoder
        pytest.skip(f"cannot write mp3 here: {exc}")
    audio = load_audio(path)
    assert audio.sample_rate == TARGET_SR
    assert audio.duration_s == pytest.approx(1.0, abs=0.1)


def test_clipping_is_measured_on_stored_frames_before_resampling(write_audio):
    x = np.clip(tone(100, 1.0, 2.0, sr=48_000), -1.0, 1.0)
    expected = float(np.mean(np.abs(x) >= 0.999))
    audio = load_audio(write_audio("c.wav", x, sr=48_000, subtype="PCM_16"))
    assert expected > 0.5
    assert audio.clipping_ratio == pytest.approx(expected, abs=0.01)


def test_clipping_ratio_counts_frames_where_any_channel_clips():
    frames = np.array([[0.0, 1.0], [0.5, 0.5], [-1.0, 0.0], [0.2, -0.1]])
    assert clipping_ratio(frames) == pytest.approx(0.5)
    assert clipping_ratio(np.array([0.1, 0.2])) == 0.0
    assert clipping_ratio(np.array([])) == 0.0


def test_missing_file(tmp_path):
    with pytest.raises(AudioLoadError, match="no such audio file"):
        load_audio(tmp_path / "nope.wav")


def test_zero_byte_file(tmp_path):
    path = tmp_path / "empty.wav"
    path.write_bytes(b"")
    with pytest.raises(AudioLoadError, match="empty"):
        load_audio(path)


def test_wav_without_samples(write_audio):
    path = write_audio("nothing.wav", np.zeros(0, dtype=np.float32))
    with pytest.raises(AudioLoadError, match="no audio samples"):
        load_audio(path)


def test_garbage_bytes_give_a_clear_error(tmp_path):
    path = tmp_path / "noise.wav"
    path.write_bytes(b"RIFF not really a wave file" * 10)
    with pytest.raises(AudioLoadError, match=r"noise\.wav: cannot decode audio"):
        load_audio(path)


def test_non_finite_samples_are_rejected():
    with pytest.raises(AudioLoadError, match="NaN"):
        Audio.from_array(np.array([0.0, np.nan, 0.1]), TARGET_SR)


def test_sha256_changes_with_content(write_audio):
    a = write_audio("a.wav", tone(200, 0.2))
    b = write_audio("b.wav", tone(201, 0.2))
    c = write_audio("c.wav", tone(200, 0.2))
    assert sha256_file(a) == sha256_file(c)
    assert sha256_file(a) != sha256_file(b)
    assert len(sha256_file(a)) == 64
