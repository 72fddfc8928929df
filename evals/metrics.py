"""Signal measurements of a clip: timing, silence, loudness, noise and clipping.

All of them come from one framing of the signal (20 ms frames every 10 ms, centred), computed
once with a cumulative sum so a minute of audio costs a few milliseconds. Levels are in dB
relative to digital full scale (dBFS, where a full-scale square wave is 0 dBFS and a full-scale
sine is -3.01 dBFS).

Silence is decided per frame against a threshold that follows the recording's own noise floor
(see :func:`analyse_frames`), so a clip with a hiss between words still shows its pauses, and a
clip of digital silence padding is not fooled by a peak-relative rule.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "ABSOLUTE_SILENCE_DBFS",
    "FRAME_S",
    "HOP_S",
    "LEVEL_FLOOR_DB",
    "MAX_MARGIN_DB",
    "MIN_CONTRAST_DB",
    "MIN_PAUSE_S",
    "RELATIVE_MARGIN",
    "SNR_RANGE_DB",
    "FrameAnalysis",
    "analyse_frames",
    "frame_power",
    "loudness_metrics",
    "silence_metrics",
    "snr_db",
    "speaking_rate",
]


#: Analysis frame and hop (seconds): silence edges are found to within about +-10 ms.
FRAME_S = 0.020
HOP_S = 0.010

#: Frames below this level are always silent (dBFS): a floor for clean, noise-free recordings.
ABSOLUTE_SILENCE_DBFS = -60.0
#: A clip whose loud and quiet frames differ by less than this (dB) has no pauses to find.
MIN_CONTRAST_DB = 10.0
#: Relative threshold: noise floor + this fraction of (peak - floor), at most MAX_MARGIN_DB.
RELATIVE_MARGIN = 0.3
MAX_MARGIN_DB = 12.0
#: Silent runs inside the speech shorter than this are gaps within words, not pauses (s).
MIN_PAUSE_S = 0.10
#: Reported levels never go below this (dB): the log of a zero power.
LEVEL_FLOOR_DB = -120.0
#: snr_db is clamped to this range (dB); the estimator cannot see speech below the noise.
SNR_RANGE_DB = (0.0, 100.0)


@dataclass(frozen=True, slots=True)
class FrameAnalysis:
    """Per-frame power and the silence decision for one clip.

    Attributes:
        sample_rate: Hz.
        n_samples: clip length in samples.
        hop: hop in samples; frame i is centred on sample i * hop.
        power: mean squared amplitude per frame (full scale = 1.0).
        level_db: 10 log10(power), floored at LEVEL_FLOOR_DB (dBFS).
        silent: True where the frame is silence (after the minimum-pause rule).
        threshold_db: the level below which a frame counted as silent (dBFS).
    """

    sample_rate: int
    n_samples: int
    hop: int
    power: np.ndarray
    level_db: np.ndarray
    silent: np.ndarray
    threshold_db: float

    @property
    def hop_s(self) -> float:
        """Hop in seconds."""
        return self.hop / self.sample_rate

    @property
    def sound(self) -> np.ndarray:
        """True where the frame is not silent."""
        return ~self.silent


def _db(power: np.ndarray | float) -> np.ndarray:
    """Power to dB with a floor, so silence gives LEVEL_FLOOR_DB rather than -inf."""
    return 10.0 * np.log10(np.maximum(power, 10.0 ** (LEVEL_FLOOR_DB / 10.0)))


def frame_power(samples: np.ndarray, sr: int) -> np.ndarray:
    """Mean squared amplitude in centred 20 ms frames every 10 ms.

    Frame i covers samples [i*hop - frame/2, i*hop + frame/2); the signal is reflected at the
    ends (zero-padded when shorter than half a frame). Computed from one cumulative sum of
    squares: O(N) whatever the frame length. Returns 1 + N // hop values.
    """
    x = np.asarray(samples, dtype=np.float64)
    frame = max(1, round(FRAME_S * sr))
    hop = max(1, round(HOP_S * sr))
    half = frame // 2
    mode = "reflect" if x.shape[0] > half else "constant"
    padded = np.pad(x, (half, frame - half), mode=mode)
    csum = np.concatenate(([0.0], np.cumsum(padded * padded)))
    starts = np.arange(0, x.shape[0] // hop + 1) * hop
    return np.maximum((csum[starts + frame] - csum[starts]) / frame, 0.0)


def _runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start (inclusive) and end (exclusive) indices of the True runs of a boolean array."""
    edges = np.diff(np.concatenate(([0], mask.astype(np.int8), [0])))
    return np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)


def _fill_short_pauses(silent: np.ndarray, min_frames: int) -> np.ndarray:
    """Turn internal silent runs shorter than ``min_frames`` into sound; edge runs stay."""
    n = silent.shape[0]
    starts, ends = _runs(silent)
    short = ((ends - starts) < min_frames) & (starts > 0) & (ends < n)
    if not short.any():
        return silent
    delta = np.zeros(n + 1, dtype=np.int32)
    np.add.at(delta, starts[short], 1)
    np.add.at(delta, ends[short], -1)
    return silent & ~(np.cumsum(delta[:n]) > 0)


def analyse_frames(samples: np.ndarray, sr: int) -> FrameAnalysis:
    """Frame the clip and decide which frames are silence.

    Threshold (dBFS), from the frame levels L (dB):
        floor = P5(L), peak = P95(L)
        if peak < -60:               every frame is silent
        elif peak - floor < 10:      no frame is silent (one steady level: nothing to split)
        else: threshold = max(-60, floor + min(0.3 * (peak - floor), 12))
    so the threshold sits a few dB above the recording's own noise floor, never above -60 dBFS
    for clean recordings. Internal silent runs shorter than 0.1 s are then counted as sound
    (closures inside words), runs touching either end are kept whatever their length.
    """
    power = frame_power(samples, sr)
    level = _db(power)
    hop = max(1, round(HOP_S * sr))
    floor, peak = (float(v) for v in np.percentile(level, [5, 95]))
    if peak < ABSOLUTE_SILENCE_DBFS:
        threshold = float("inf")
    elif peak - floor < MIN_CONTRAST_DB:
        threshold = LEVEL_FLOOR_DB
    else:
        margin = min(RELATIVE_MARGIN * (peak - floor), MAX_MARGIN_DB)
        threshold = max(ABSOLUTE_SILENCE_DBFS, floor + margin)
    silent = level < threshold
    silent = _fill_short_pauses(silent, max(1, round(MIN_PAUSE_S / HOP_S)))
    return FrameAnalysis(
        sample_rate=sr,
        n_samples=int(np.asarray(samples).shape[0]),
        hop=hop,
        power=power,
        level_db=level,
        silent=silent,
        threshold_db=threshold,
    )


def silence_metrics(fa: FrameAnalysis) -> dict[str, float]:
    """Timing of silence and speech.

    - ``duration_s`` (s): N / sr.
    - ``silence_ratio`` (0..1): silent frames / all frames.
    - ``leading_silence_s`` / ``trailing_silence_s`` (s): silence before the first and after
      the last non-silent frame (frame centres, so +-10 ms); the whole duration when all silent.
    - ``speech_duration_s`` (s): duration_s x (1 - silence_ratio).
    - ``pause_ratio`` (0..1): silent frames between the first and last sound frame / frames in
      that span: the pausing inside the utterance, without the padding at its ends. Absent
      when the clip is all silence.
    """
    duration = fa.n_samples / fa.sample_rate
    n = fa.silent.shape[0]
    silence_ratio = float(np.count_nonzero(fa.silent) / n)
    out = {
        "duration_s": duration,
        "silence_ratio": silence_ratio,
        "speech_duration_s": duration * (1.0 - silence_ratio),
    }
    sound_idx = np.flatnonzero(fa.sound)
    if sound_idx.size == 0:
        out["leading_silence_s"] = duration
        out["trailing_silence_s"] = duration
        return out
    first, last = int(sound_idx[0]), int(sound_idx[-1])
    out["leading_silence_s"] = min(first * fa.hop_s, duration)
    out["trailing_silence_s"] = min((n - 1 - last) * fa.hop_s, duration)
    span = fa.silent[first : last + 1]
    out["pause_ratio"] = float(np.count_nonzero(span) / span.shape[0])
    return out


def loudness_metrics(samples: np.ndarray, fa: FrameAnalysis) -> dict[str, float]:
    """Levels of the clip (all dBFS, full-scale square = 0 dBFS, floor -120).

    - ``rms_dbfs``: 20 log10(sqrt(mean(x^2))) over the whole clip, pauses included.
    - ``active_rms_dbfs``: 10 log10(mean frame power over non-silent frames): the speech level,
      independent of how much padding surrounds it. Absent when all silent.
    - ``peak_dbfs``: 20 log10(max |x|).
    - ``dynamic_range_db`` (dB): P95 - P5 of the non-silent frame levels: how much the speech
      level moves (near 0 for a steady tone, 15-30 for natural speech). Absent if < 2 frames.
    """
    x = np.asarray(samples, dtype=np.float64)
    out = {
        "rms_dbfs": float(_db(np.mean(x * x))),
        "peak_dbfs": float(_db(np.max(np.abs(x)) ** 2)),
    }
    sound = fa.sound
    if np.count_nonzero(sound) >= 1:
        out["active_rms_dbfs"] = float(_db(np.mean(fa.power[sound])))
    if np.count_nonzero(sound) >= 2:
        p5, p95 = np.percentile(fa.level_db[sound], [5, 95])
        out["dynamic_range_db"] = float(p95 - p5)
    return out


def snr_db(fa: FrameAnalysis) -> float | None:
    """Estimated signal-to-noise ratio (dB), from the clip alone.

    noise power Pn = mean power of the silent frames (when there are at least 5, i.e. 50 ms),
    otherwise of the quietest 10 % of frames; signal power Ps = mean power of the non-silent
    frames minus Pn; SNR = 10 log10(Ps / Pn), clamped to [0, 100] dB (digital silence gives
    100). A blind estimate: good for ranking clips, not a lab measurement. None when the
    clip has no non-silent frame.
    """
    sound = fa.sound
    if not sound.any():
        return None
    if np.count_nonzero(fa.silent) >= 5:
        noise = float(np.mean(fa.power[fa.silent]))
    else:
        quiet = np.sort(fa.power)[: max(1, fa.power.shape[0] // 10)]
        noise = float(np.mean(quiet))
    tiny = 10.0 ** (LEVEL_FLOOR_DB / 10.0)
    signal = max(float(np.mean(fa.power[sound])) - noise, tiny)
    value = 10.0 * np.log10(signal / max(noise, tiny))
    return float(np.clip(value, *SNR_RANGE_DB))


def speaking_rate(words: int, speech_duration_s: float) -> float | None:
    """Words per second of speech (words/s): words / speech_duration_s.

    Counts only non-silent time, so padding and pauses do not slow the rate down. None when
    there are no words to count or under 0.1 s of speech. Conversational English is about
    2-3.5 words/s (120-210 words per minute).
    """
    if words <= 0 or speech_duration_s < 0.1:
        return None
    return words / speech_duration_s
