"""Synthetic test signals with known properties, for tests, benchmarks and demos.

Real speech cannot be shipped or generated without a synthesiser, and its metrics are not known
exactly anyway. These signals are built so their answers are known by construction: a tone has
one F0, a silent stretch has a known length, a clipped sine has a known clipped fraction.
"""

from __future__ import annotations

import numpy as np

__all__ = ["SR", "silence", "speechlike", "tone"]


SR = 16_000


def tone(freq_hz: float, duration_s: float, amplitude: float = 0.5, sr: int = SR) -> np.ndarray:
    """A sine of ``freq_hz`` (float32)."""
    t = np.arange(round(duration_s * sr)) / sr
    return (amplitude * np.sin(2 * np.pi * freq_hz * t)).astype(np.float32)


def silence(duration_s: float, sr: int = SR) -> np.ndarray:
    """Digital silence (float32 zeros)."""
    return np.zeros(round(duration_s * sr), dtype=np.float32)


def speechlike(
    duration_s: float = 10.0,
    *,
    f0_hz: float = 140.0,
    syllables_per_s: float = 4.0,
    pause_every_s: float = 2.5,
    pause_s: float = 0.4,
    noise_dbfs: float | None = None,
    seed: int = 0,
    sr: int = SR,
) -> np.ndarray:
    """A voiced, syllabic signal with intonation and pauses, roughly like read speech.

    A 12-harmonic source whose F0 glides +-3 semitones around ``f0_hz`` (slow sinusoid plus a
    seeded random walk), shaped into syllables by a raised-cosine envelope, silenced for
    ``pause_s`` every ``pause_every_s``, with optional white noise at ``noise_dbfs`` RMS.
    Peak about -6 dBFS. Deterministic for a given seed.
    """
    rng = np.random.default_rng(seed)
    n = round(duration_s * sr)
    t = np.arange(n) / sr
    walk = np.cumsum(rng.normal(0.0, 1.0, n // 160 + 2))
    walk = np.interp(t, np.arange(walk.shape[0]) * 0.01, walk - walk.mean())
    walk *= 1.0 / max(np.abs(walk).max(), 1e-9)
    semitones = 2.0 * np.sin(2 * np.pi * 0.4 * t) + 1.0 * walk
    f0 = f0_hz * 2.0 ** (semitones / 12.0)
    phase = 2 * np.pi * np.cumsum(f0) / sr
    k = np.arange(1, 13)[:, None]
    source = (np.sin(k * phase[None, :]) / k).sum(axis=0)
    envelope = 0.5 - 0.5 * np.cos(2 * np.pi * syllables_per_s * t)
    envelope = envelope**0.5
    in_pause = (t % pause_every_s) > (pause_every_s - pause_s)
    signal = source * envelope * ~in_pause
    signal *= 0.5 / max(np.abs(signal).max(), 1e-9)
    if noise_dbfs is not None:
        signal = signal + rng.normal(0.0, 10 ** (noise_dbfs / 20.0), n)
    return signal.astype(np.float32)
