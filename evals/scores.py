"""The two 0..1 summary scores built from the signal metrics: prosody and quality.

Both are transparent heuristics, not learned predictors: each metric is mapped to 0..1 by a
trapezoid (0 outside a plausible range, 1 inside the range typical of good speech, linear in
between) and the parts are combined by fixed weights. The ranges are stated next to each part so
a reader can disagree with a number rather than with a black box.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["INF", "PROSODY_PARTS", "prosody_score", "quality_score", "trapezoid"]


def trapezoid(x: float, zero_lo: float, one_lo: float, one_hi: float, zero_hi: float) -> float:
    """Piecewise-linear membership: 0 at or below zero_lo, rising to 1 at one_lo, flat to
    one_hi, falling to 0 at zero_hi and beyond. Use +-inf for an open side."""
    if x < one_lo:
        return 0.0 if x <= zero_lo else (x - zero_lo) / (one_lo - zero_lo)
    if x > one_hi:
        return 0.0 if x >= zero_hi else (zero_hi - x) / (zero_hi - one_hi)
    return 1.0


INF = float("inf")

#: (metric, zero_lo, one_lo, one_hi, zero_hi) for each prosody part.
PROSODY_PARTS: tuple[tuple[str, float, float, float, float], ...] = (
    # Intonation: a monotone (<0.5 st) scores 0, 2-6 st is lively speech, >10 st erratic.
    ("f0_spread_semitones", 0.5, 2.0, 6.0, 10.0),
    # Tempo: 2-3.5 words/s is conversational; 1 or 5.5 words/s is unnatural.
    ("speaking_rate_wps", 1.0, 2.0, 3.5, 5.5),
    # Pausing inside the utterance: up to 25 % is normal phrasing, 60 % is halting.
    ("pause_ratio", -INF, -INF, 0.25, 0.60),
    # Voicing of the non-silent part: speech is mostly voiced; whisper or noise is not.
    ("voiced_ratio", 0.10, 0.40, INF, INF),
)


def prosody_score(metrics: Mapping[str, float]) -> float | None:
    """Prosody score (0..1): the mean of the available parts of PROSODY_PARTS.

    prosody = mean_i trapezoid_i(metric_i) over the metrics present (speaking rate needs a word
    count, F0 spread needs voiced frames). None when none is present.
    """
    parts = [
        trapezoid(float(metrics[name]), *bounds)
        for name, *bounds in PROSODY_PARTS
        if name in metrics
    ]
    return sum(parts) / len(parts) if parts else None


def quality_score(metrics: Mapping[str, float]) -> float | None:
    """Signal quality score (0..1).

        q_snr   = clamp((snr_db - 5) / 30, 0, 1)          5 dB -> 0, 35 dB or better -> 1
        q_level = trapezoid(active_rms_dbfs; -45, -30, -10, -2)   too quiet or too hot
        q_clip  = 1 - min(clipping_ratio / 0.01, 1)        1 % clipped samples -> 0
        quality = (0.7 q_snr + 0.3 q_level) * q_clip

    Clipping multiplies because audible distortion spoils a clip however clean it otherwise
    is. A missing part (no speech found) is left out and the weights of the rest renormalised;
    None when neither SNR nor level is known.
    """
    weighted: list[tuple[float, float]] = []
    if "snr_db" in metrics:
        weighted.append((0.7, min(max((float(metrics["snr_db"]) - 5.0) / 30.0, 0.0), 1.0)))
    if "active_rms_dbfs" in metrics:
        weighted.append((0.3, trapezoid(float(metrics["active_rms_dbfs"]), -45, -30, -10, -2)))
    if not weighted:
        return None
    base = sum(w * v for w, v in weighted) / sum(w for w, _ in weighted)
    clip = 1.0 - min(float(metrics.get("clipping_ratio", 0.0)) / 0.01, 1.0)
    return base * clip
