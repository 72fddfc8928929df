"""What the ``arbiter evals`` commands share: their common options, the checks made before any
audio is evaluated (files, the evals extra, Whisper's weights, KEY=VALUE options), evaluating one
row in this process, the ingest's rules applied to the events, and how metrics are printed.

Its own room so that each evals command module (:mod:`.evals`, :mod:`.evals_run`) depends on it
and not on each other. It imports nothing of the evals extra (torch, whisper, librosa): the
modules of :mod:`arbiter.evals` that need it are imported inside the functions, so ``arbiter``
works without the extra and a command that needs it exits 2 naming what to install.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from arbiter.domain.rejections import Rejection
from arbiter.domain.validation import decode_event
from arbiter.evals.extra import EXTRA_HINT, missing_modules
from rich.console import Console
from rich.markup import escape

from .common import console, err, fail

if TYPE_CHECKING:
    from arbiter.evals.manifest import Row

__all__ = [
    "SHOWN",
    "Arena",
    "AudioArg",
    "Category",
    "DryRun",
    "OccurredAt",
    "Reference",
    "Renormalise",
    "Transcribe",
    "WhisperModel",
    "check_files",
    "check_whisper",
    "evaluate_one",
    "fail_literal",
    "fmt_metric",
    "output",
    "pairs",
    "parse_occurred_at",
    "require_extra",
    "validate",
]

#: Metrics shown in the terminal, in this order (the event carries all of them).
SHOWN = (
    "composite", "wer", "cer", "prosody_score", "quality_score", "latency_ms", "semascore",
    "duration_s", "silence_ratio", "speaking_rate_wps", "f0_median_hz", "rms_dbfs", "snr_db",
    "clipping_ratio",
)  # fmt: skip

AudioArg = Annotated[Path, typer.Argument(help="Audio file (wav, flac, ogg, mp3).")]
Reference = Annotated[
    str | None, typer.Option(help="What the clip should say (enables WER/CER via Whisper).")
]
Arena = Annotated[str, typer.Option(help="Rating pool.")]
Category = Annotated[str | None, typer.Option(help="Sub-pool (scenario category).")]
Transcribe = Annotated[
    bool | None,
    typer.Option(
        "--transcribe/--no-transcribe",
        help="Run Whisper. Default: only when --reference is given.",
        show_default=False,
    ),
]
WhisperModel = Annotated[
    str | None,
    typer.Option(help="Whisper model name or checkpoint path. Default: $ARBITER_WHISPER_MODEL."),
]
Renormalise = Annotated[
    bool,
    typer.Option(
        "--renormalise",
        help="Composite: leave unmeasured components out and rescale the weights, instead of "
        "seed 000's rule (they count 0, no rescaling; the rule an opted-in arena judges by).",
    ),
]
OccurredAt = Annotated[
    str | None,
    typer.Option(help="RFC 3339 time of the result. Default: newest mtime of the audio."),
]
DryRun = Annotated[
    bool, typer.Option("--dry-run", help="Print the event as JSON instead of publishing it.")
]


def fail_literal(message: str, code: int = 2) -> typer.Exit:
    """:func:`~.common.fail` with the message taken literally (it prints Rich markup: "[evals]"
    would vanish)."""
    return fail(escape(message), code)


def output(stderr: bool = False) -> Console:
    return err if stderr else console


def require_extra(transcribe: bool) -> None:
    """Exit 2 naming the missing packages when the evals extra is not installed."""
    missing = missing_modules(transcribe)
    if missing:
        raise fail_literal(
            f"the evals extra is not installed (missing: {', '.join(missing)}); "
            f"install it with: {EXTRA_HINT}"
        )


def check_whisper(transcribe: bool, whisper_model: str | None) -> None:
    """Resolve the Whisper checkpoint up front: missing weights are a configuration error."""
    if not transcribe:
        return
    # Lazy here and below: arbiter.evals loads numpy (0.1 s), which --help need not pay.
    from arbiter.evals.whisper_model import WhisperWeightsMissing, resolve_model

    try:
        resolve_model(whisper_model)
    except WhisperWeightsMissing as exc:
        raise fail_literal(str(exc)) from exc


def check_files(*paths: Path) -> None:
    for path in paths:
        if not path.is_file():
            raise fail_literal(f"{path}: no such audio file")


def pairs(values: Sequence[str], flag: str) -> dict[str, str]:
    """KEY=VALUE options into a dict (exit 2 on a malformed one)."""
    out: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise fail_literal(f"{flag} takes KEY=VALUE, got {item!r}")
        out[key.strip()] = value.strip()
    return out


def evaluate_one(
    row: Row, transcribe: bool, whisper_model: str | None, renormalise: bool = False
) -> dict[str, Any]:
    """Evaluate one row in this process and return its event (exit 2 on unreadable audio)."""
    from arbiter.evals.manifest import iter_events
    from arbiter.evals.whisper_model import WhisperWeightsMissing

    try:
        (outcome,) = iter_events(
            [row],
            workers=0,
            transcribe=transcribe,
            whisper_model=whisper_model,
            renormalise=renormalise,
        )
    except WhisperWeightsMissing as exc:
        raise fail_literal(str(exc)) from exc
    if outcome.status != "evaluated" or outcome.event is None:
        message = outcome.error or "the clip could not be evaluated"
        code = 2 if message.startswith("AudioLoadError") else 1
        raise fail_literal(message.removeprefix("AudioLoadError: "), code)
    return outcome.event


def _encode(event: dict[str, Any]) -> bytes:
    return json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode()


def validate(events: Iterable[dict[str, Any]]) -> tuple[list[bytes], list[str]]:
    """(payloads that pass the ingest's own rules, a line per refused event)."""
    good: list[bytes] = []
    problems: list[str] = []
    for event in events:
        raw = _encode(event)
        result = decode_event(raw)
        if isinstance(result, Rejection):
            problems.append(f"{event.get('event_id')}: {result.code}: {result.message}")
        else:
            good.append(raw)
    return good, problems


def parse_occurred_at(value: str | None) -> str | None:
    if value is None:
        return None
    from arbiter.evals.judge import rfc3339

    try:
        return rfc3339(value)
    except ValueError as exc:
        raise fail_literal(f"--occurred-at: {exc}") from exc


def fmt_metric(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.4g}" if abs(value) < 1e5 else f"{value:.0f}"
