"""One call that measures a clip: :func:`evaluate` -> :class:`EvalResult`.

The metrics come back as one flat ``{name: float}`` dict, ready to go into a ``battle.completed``
or ``trial.completed`` event. Every value is finite (a metric that cannot be computed is left
out, never NaN or infinity, which JSON and the event schema reject) and rounded to 6 decimals,
so float noise does not change an event's content between reruns.

Metric names and units (see the modules that compute them for formulas):

=====================  ===========  ======================================================
duration_s             s            clip length
speech_duration_s      s            non-silent time
silence_ratio          0..1         silent frames / all frames
leading_silence_s      s            silence before the first sound
trailing_silence_s     s            silence after the last sound
pause_ratio            0..1         silence between first and last sound / that span
speaking_rate_wps      words/s      words / speech_duration_s (needs reference or transcript)
f0_median_hz           Hz           median pitch of voiced frames
f0_spread_semitones    semitones    std of pitch around its median
voiced_ratio           0..1         voiced frames / non-silent frames
rms_dbfs               dBFS         RMS level of the whole clip
active_rms_dbfs        dBFS         RMS level of the non-silent frames
peak_dbfs              dBFS         largest sample magnitude
dynamic_range_db       dB           P95 - P5 of non-silent frame levels
clipping_ratio         0..1         frames at full scale (as stored, before resampling)
snr_db                 dB           blind signal-to-noise estimate, 0..100
wer, cer               ratio >= 0   word / character error rate vs the reference
latency_ms             ms           passed in by the caller
semascore              0..1         passed in by the caller (semantic similarity)
prosody_score          0..1         scores.prosody_score
quality_score          0..1         scores.quality_score
composite              0..1         composite.composite
=====================  ===========  ======================================================
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping

import msgspec
import numpy as np
from arbiter.evals.audio import Audio, load_audio, sha256_file
from arbiter.evals.composite import Composite, composite
from arbiter.evals.metrics import analyse_frames, loudness_metrics, silence_metrics, snr_db
from arbiter.evals.metrics import speaking_rate as words_per_second
from arbiter.evals.pitch import pitch_metrics
from arbiter.evals.scores import prosody_score, quality_score
from arbiter.evals.text import normalize_text
from arbiter.evals.wer import align

__all__ = ["DECIMALS", "EvalResult", "Transcriber", "clean_metrics", "evaluate", "signal_metrics"]


Transcriber = Callable[[np.ndarray], str]
DECIMALS = 6


class EvalResult(msgspec.Struct, frozen=True):
    """Everything measured about one clip.

    Attributes:
        source: the file path, or "<array>" for in-memory audio.
        audio_sha256: SHA-256 of the file's bytes (None for in-memory audio).
        metrics: flat name -> finite float (table in the module docstring).
        composite: the composite breakdown, incl. which components were missing (None only
            when nothing composite-worthy could be measured).
        transcript: Whisper's text, when transcription ran.
    """

    source: str
    audio_sha256: str | None
    metrics: dict[str, float]
    composite: Composite | None
    transcript: str | None = None


def clean_metrics(raw: Mapping[str, float | int | None]) -> dict[str, float]:
    """Drop None/NaN/inf values and bools, round the rest to 6 decimals (-0.0 -> 0.0)."""
    out: dict[str, float] = {}
    for name, value in raw.items():
        if value is None or isinstance(value, bool):
            continue
        v = float(value)
        if math.isfinite(v):
            out[name] = round(v, DECIMALS) + 0.0
    return out


def signal_metrics(audio: Audio, words: int | None = None) -> dict[str, float]:
    """All metrics that come from the samples alone (plus a word count for speaking rate)."""
    samples, sr = audio.samples, audio.sample_rate
    fa = analyse_frames(samples, sr)
    out: dict[str, float] = {}
    out.update(silence_metrics(fa))
    out.update(loudness_metrics(samples, fa))
    out["clipping_ratio"] = audio.clipping_ratio
    snr = snr_db(fa)
    if snr is not None:
        out["snr_db"] = snr
    out.update(pitch_metrics(samples, fa))
    if words is not None:
        rate = words_per_second(words, out["speech_duration_s"])
        if rate is not None:
            out["speaking_rate_wps"] = rate
    return out


def _default_transcriber(samples: np.ndarray) -> str:
    from arbiter.evals.whisper_model import transcribe

    return transcribe(samples)


def evaluate(
    audio: str | os.PathLike[str] | Audio,
    reference_text: str | None = None,
    latency_ms: float | None = None,
    *,
    transcribe: bool = True,
    semascore: float | None = None,
    transcriber: Transcriber | None = None,
    extra_metrics: Mapping[str, float] | None = None,
    renormalise: bool = False,
) -> EvalResult:
    """Measure one clip.

    Args:
        audio: a file path (read with :func:`load_audio`) or an :class:`Audio`.
        reference_text: what the clip should say; enables WER/CER (with a transcript) and is
            the word count for speaking rate (it says what was meant to be spoken; the
            transcript's count is used only when there is no reference).
        latency_ms: time to first audio, measured by whoever produced the clip.
        transcribe: run speech recognition (Whisper, or ``transcriber``).
        semascore: semantic similarity of response and reference (0..1), from an external
            scorer; absent -> it counts 0 in the composite (seed 000's rule), or is left out
            with ``renormalise``.
        transcriber: replaces Whisper (samples -> text), e.g. a cached or remote recogniser.
        extra_metrics: producer-side numbers to carry along (ttfb_ms, cost_usd, ...).
        renormalise: the composite's rule (:mod:`arbiter.evals.composite`).
    """
    if isinstance(audio, Audio):
        clip, digest = audio, None
    else:
        clip, digest = load_audio(audio), sha256_file(audio)

    transcript: str | None = None
    if transcribe:
        transcript = (transcriber or _default_transcriber)(clip.samples)

    ref_words = normalize_text(reference_text).split() if reference_text else []
    hyp_words = normalize_text(transcript).split() if transcript is not None else None
    if ref_words:
        words: int | None = len(ref_words)
    elif hyp_words:
        words = len(hyp_words)
    else:
        words = None

    raw: dict[str, float | int | None] = dict(signal_metrics(clip, words))
    if ref_words and hyp_words is not None:
        raw["wer"] = align(ref_words, hyp_words).rate
        ref_text, hyp_text = " ".join(ref_words), " ".join(hyp_words)
        raw["cer"] = align(list(ref_text), list(hyp_text)).rate
    if latency_ms is not None:
        raw["latency_ms"] = latency_ms
    if semascore is not None:
        raw["semascore"] = semascore
    if extra_metrics:
        raw.update({k: v for k, v in extra_metrics.items() if k not in raw})

    if raw.get("speech_duration_s", 0.0) <= 0.0:
        # No speech at all: the worst prosody and quality, not "unknown".
        raw["prosody_score"], raw["quality_score"] = 0.0, 0.0
    else:
        raw["prosody_score"] = prosody_score(clean_metrics(raw))
        raw["quality_score"] = quality_score(clean_metrics(raw))
    metrics = clean_metrics(raw)
    try:
        comp: Composite | None = composite(metrics, renormalise=renormalise)
    except ValueError:
        comp = None
    if comp is not None:
        metrics["composite"] = round(comp.score, DECIMALS)
    return EvalResult(
        source=clip.source,
        audio_sha256=digest,
        metrics=metrics,
        composite=comp,
        transcript=transcript,
    )
