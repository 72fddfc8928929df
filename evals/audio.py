"""Audio loading for the evaluators: any file the decoders can read, as 16 kHz mono float32.

Every metric and Whisper itself work on one canonical form, so two competitors' clips are
always measured on equal terms whatever rate, width or channel count they were saved with.
16 kHz is Whisper's input rate and ample for speech (the band that matters ends near 8 kHz).

Clipping is measured here, on the frames as stored, because resampling and down-mixing both
smear a clipped plateau: after them a hard-clipped sample no longer sits at full scale.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = [
    "CLIP_LEVEL",
    "TARGET_SR",
    "Audio",
    "AudioLoadError",
    "clipping_ratio",
    "load_audio",
    "sha256_file",
]


#: The rate every clip is converted to (Whisper's input rate).
TARGET_SR = 16_000

#: A sample whose magnitude reaches this fraction of full scale counts as clipped. Just under 1.0
#: so that int16's largest positive value (32767/32768) still counts.
CLIP_LEVEL = 0.999


class AudioLoadError(ValueError):
    """A file could not be turned into samples: missing, unreadable, empty or corrupt."""


@dataclass(frozen=True, slots=True)
class Audio:
    """A clip in canonical form.

    Attributes:
        samples: mono float32 samples at ``sample_rate``, nominally in [-1, 1].
        sample_rate: always ``TARGET_SR`` for clips from :func:`load_audio`.
        source_sample_rate: the rate the file was stored at (Hz).
        source_channels: channel count of the file.
        clipping_ratio: fraction (0..1) of stored frames in which any channel reached
            ``CLIP_LEVEL`` of full scale, measured before resampling and down-mixing.
        source: where the samples came from (a path, or a label for in-memory audio).
    """

    samples: np.ndarray
    sample_rate: int
    source_sample_rate: int
    source_channels: int
    clipping_ratio: float
    source: str = "<array>"

    @property
    def duration_s(self) -> float:
        """Length in seconds."""
        return self.samples.shape[0] / self.sample_rate

    @classmethod
    def from_array(cls, samples: np.ndarray, sample_rate: int, source: str = "<array>") -> Audio:
        """Wrap in-memory samples (1-D mono, or 2-D frames x channels) as a canonical clip."""
        data = np.asarray(samples, dtype=np.float32)
        if data.ndim == 1:
            data = data[:, None]
        if data.ndim != 2:
            raise AudioLoadError(f"{source}: expected 1-D or 2-D samples, got shape {data.shape}")
        return _canonical(data, int(sample_rate), source)


def clipping_ratio(frames: np.ndarray, level: float = CLIP_LEVEL) -> float:
    """Fraction of frames (rows) in which any channel's magnitude reaches ``level`` (0..1).

    Formula: count(max_c |x[n, c]| >= level) / N. Unitless. 0 for an empty array.
    """
    data = np.asarray(frames)
    if data.size == 0:
        return 0.0
    peak = np.abs(data) if data.ndim == 1 else np.abs(data).max(axis=1)
    return float(np.count_nonzero(peak >= level) / peak.shape[0])


def _canonical(frames: np.ndarray, sr: int, source: str) -> Audio:
    """Validate, measure clipping on stored frames, then down-mix and resample to TARGET_SR."""
    if frames.shape[0] == 0:
        raise AudioLoadError(f"{source}: the file contains no audio samples")
    if sr <= 0:
        raise AudioLoadError(f"{source}: invalid sample rate {sr}")
    if not np.isfinite(frames).all():
        raise AudioLoadError(f"{source}: the audio contains NaN or infinite samples")
    clipped = clipping_ratio(frames)
    mono = frames.mean(axis=1, dtype=np.float64).astype(np.float32)
    if sr != TARGET_SR:
        import librosa

        mono = librosa.resample(mono, orig_sr=sr, target_sr=TARGET_SR, res_type="soxr_hq")
        mono = np.ascontiguousarray(mono, dtype=np.float32)
    return Audio(
        samples=mono,
        sample_rate=TARGET_SR,
        source_sample_rate=sr,
        source_channels=int(frames.shape[1]),
        clipping_ratio=clipped,
        source=source,
    )


def load_audio(path: str | os.PathLike[str]) -> Audio:
    """Read a wav/flac/ogg/mp3 (whatever libsndfile decodes) as 16 kHz mono float32.

    Formats libsndfile cannot read (m4a, ...) are retried through librosa's audioread fallback,
    which needs ffmpeg or another system decoder. Raises :class:`AudioLoadError` naming the file
    and the reason when the file is missing, undecodable or holds no samples.
    """
    p = Path(path)
    label = str(p)
    if not p.is_file():
        raise AudioLoadError(f"{label}: no such audio file")
    if p.stat().st_size == 0:
        raise AudioLoadError(f"{label}: the file is empty (0 bytes)")

    import soundfile as sf

    try:
        frames, sr = sf.read(label, dtype="float32", always_2d=True)
    except Exception as sf_error:  # libsndfile raises several types; all mean "cannot decode"
        return _load_with_fallback(p, sf_error)
    return _canonical(frames, int(sr), label)


def _load_with_fallback(p: Path, first_error: Exception) -> Audio:
    """Second chance for formats libsndfile lacks: librosa/audioread (needs a system decoder)."""
    label = str(p)
    try:
        import librosa

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            mono, sr = librosa.load(label, sr=None, mono=False)
    except Exception as fallback_error:
        raise AudioLoadError(
            f"{label}: cannot decode audio (libsndfile: {first_error}; "
            f"audioread: {fallback_error or type(fallback_error).__name__}). "
            "Convert it to WAV or FLAC, or install ffmpeg for other formats."
        ) from first_error
    frames = np.asarray(mono, dtype=np.float32)
    frames = frames[:, None] if frames.ndim == 1 else frames.T
    return _canonical(frames, int(sr), label)


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file's bytes: the content identity used in deterministic event ids."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
