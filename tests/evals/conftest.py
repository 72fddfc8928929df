"""Shared fixtures for the evals tests: audio files written on the fly, a random-weight Whisper."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

SR = 16_000

WriteAudio = Callable[..., Path]


@pytest.fixture
def write_audio(tmp_path: Path) -> WriteAudio:
    """Write samples to tmp_path/<name> (format from the suffix) and return the path."""

    import soundfile as sf

    def write(name: str, samples: np.ndarray, sr: int = SR, subtype: str | None = None) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(str(path), samples, sr, subtype=subtype)
        return path

    return write


@pytest.fixture(scope="session")
def random_whisper_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real Whisper checkpoint file with tiny dims and random weights (about 14 MB).

    It goes through the same whisper.load_model(path) code as real weights; what it transcribes
    is gibberish, so tests assert only on types and plumbing, never on words.
    """
    import torch
    from whisper.model import ModelDimensions, Whisper

    torch.manual_seed(1234)
    dims = ModelDimensions(
        n_mels=80,
        n_audio_ctx=1500,
        n_audio_state=64,
        n_audio_head=2,
        n_audio_layer=1,
        n_vocab=51865,
        n_text_ctx=64,  # caps decoding at 32 tokens: random weights never stop on their own
        n_text_state=64,
        n_text_head=2,
        n_text_layer=1,
    )
    model = Whisper(dims)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.normal_(0.0, 0.02)
    path = tmp_path_factory.mktemp("whisper") / "random-tiny.pt"
    torch.save({"dims": dataclasses.asdict(dims), "model_state_dict": model.state_dict()}, path)
    return path


@pytest.fixture
def whisper_env(monkeypatch: pytest.MonkeyPatch, random_whisper_checkpoint: Path) -> Iterator[Path]:
    """Point ARBITER_WHISPER_MODEL at the random checkpoint, with a fresh model cache."""
    from arbiter.evals import whisper_model

    monkeypatch.setenv(whisper_model.MODEL_ENV, str(random_whisper_checkpoint))
    monkeypatch.setenv(whisper_model.LANGUAGE_ENV, "en")
    whisper_model.clear_cache()
    yield random_whisper_checkpoint
    whisper_model.clear_cache()
