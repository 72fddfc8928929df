"""Whisper loading from local files only, through the real whisper.load_model code path."""

from __future__ import annotations

import pytest

pytest.importorskip("whisper")
pytest.importorskip("librosa")

from arbiter.evals import whisper_model
from arbiter.evals.audio import Audio
from arbiter.evals.evaluate import evaluate
from arbiter.evals.synthetic import SR, speechlike
from arbiter.evals.whisper_model import (
    CACHE_ENV,
    MODEL_ENV,
    WhisperWeightsMissing,
    get_model,
    resolve_model,
    transcribe,
)

pytestmark = pytest.mark.evals


def test_random_checkpoint_loads_and_transcribes(whisper_env):
    text = transcribe(speechlike(2.0, seed=5))
    assert isinstance(text, str)
    assert text == text.strip()


def test_model_is_loaded_once_per_process(whisper_env):
    first = get_model()
    assert get_model() is first
    assert first.device.type == whisper_model.default_device()
    assert first.dims.n_audio_state == 64  # it is our checkpoint, not some other model


def test_evaluate_with_whisper_reports_wer(whisper_env):
    result = evaluate(
        Audio.from_array(speechlike(2.0, seed=6), SR), reference_text="hello there world"
    )
    assert isinstance(result.transcript, str)
    assert result.metrics["wer"] >= 0.0
    assert "cer" in result.metrics
    assert "wer" in result.composite.components


def test_missing_named_model_says_what_to_do(monkeypatch, tmp_path):
    monkeypatch.setenv(MODEL_ENV, "tiny")
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    with pytest.raises(WhisperWeightsMissing) as info:
        resolve_model()
    message = str(info.value)
    assert str(tmp_path / "cache" / "tiny.pt") in message
    assert MODEL_ENV in message and CACHE_ENV in message
    assert "never downloads" in message


def test_named_model_resolves_from_the_cache_dir(monkeypatch, tmp_path, random_whisper_checkpoint):
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "base.en.pt").write_bytes(random_whisper_checkpoint.read_bytes())
    monkeypatch.setenv(CACHE_ENV, str(cache))
    spec = resolve_model("base.en")
    assert spec.checkpoint == cache / "base.en.pt"
    assert spec.name == "base.en"


def test_missing_checkpoint_path(monkeypatch, tmp_path):
    monkeypatch.setenv(MODEL_ENV, str(tmp_path / "nope.pt"))
    with pytest.raises(WhisperWeightsMissing, match=f"{MODEL_ENV}=.*does not exist"):
        resolve_model()


def test_unknown_model_name(monkeypatch):
    monkeypatch.setenv(MODEL_ENV, "gigantic-v9")
    with pytest.raises(WhisperWeightsMissing, match="neither a Whisper model name"):
        resolve_model()


def test_default_is_base_from_the_cache(monkeypatch, tmp_path):
    monkeypatch.delenv(MODEL_ENV, raising=False)
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    with pytest.raises(WhisperWeightsMissing, match="'base'"):
        resolve_model()
