"""``arbiter evals``: judge audio and publish what it finds (``battle``, ``trial``, ``run``).

* ``arbiter evals battle A.wav B.wav --a X --b Y`` measures both clips, decides the winner by
  composite (ties closer than 0.02, :func:`arbiter.evals.composite.auto_winner`: seed 000's rule
  by default, the same function an opted-in arena's fold judges with; ``--renormalise`` for
  the rescaled one) and publishes ``battle.completed`` with ``judge: auto`` and both metric
  sets.
* ``arbiter evals trial CLIP.wav --competitor X --experiment E --trial-id T --prompt-index N``
  publishes ``trial.completed`` with the clip's metrics.
* ``arbiter evals run MANIFEST`` does many of either from a CSV/JSONL/JSON manifest
  (:mod:`arbiter.evals.manifest`) in worker processes, with a progress bar, and resumes: a row
  whose event id (derived from the row and its audio bytes) is in the state file or already in
  the event store is skipped without being evaluated.

All three build their events with the same code (:func:`arbiter.evals.manifest.iter_events`),
so a battle judged alone and the same battle in a manifest give the same event, byte for byte.
``occurred_at`` defaults to the newest modification time of the audio (not the clock), so
rerunning a command republishes identical content under the same id: a no-op for the ingest.

Whisper runs only when asked (``--transcribe``), which is the default when a reference text is
given (it is what WER/CER need). The evals extra (librosa, soundfile, torch, openai-whisper) is
imported inside the commands, so ``arbiter`` itself works without it; a command that needs it
exits 2 naming what to install. Exit codes: 0 ok, 1 a failure (rows that could not be
evaluated, events refused), 2 usage or configuration error (missing file, missing extra,
missing Whisper weights).

This module holds the group and ``battle`` / ``trial``; ``run`` is :mod:`.evals_run`, the pieces
they share are :mod:`.evals_shared` (options, checks, evaluation) and :mod:`.evals_publish`.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .evals_publish import publish_or_print
from .evals_run import run
from .evals_shared import (
    SHOWN,
    Arena,
    AudioArg,
    Category,
    DryRun,
    OccurredAt,
    Reference,
    Renormalise,
    Transcribe,
    WhisperModel,
    check_files,
    check_whisper,
    evaluate_one,
    fail_literal,
    fmt_metric,
    output,
    pairs,
    parse_occurred_at,
    require_extra,
)

__all__ = ["battle", "evals_app", "trial"]

evals_app = typer.Typer(
    help="Evaluate audio (Whisper, librosa, composite) and publish auto-judged results.",
    no_args_is_help=True,
)


@evals_app.command("battle")
def battle(
    audio_a: AudioArg,
    audio_b: AudioArg,
    a: Annotated[str, typer.Option("--a", help="Competitor who produced AUDIO_A.")],
    b: Annotated[str, typer.Option("--b", help="Competitor who produced AUDIO_B.")],
    reference: Reference = None,
    latency_a: Annotated[
        float | None, typer.Option("--latency-a", help="Latency of a (ms).", min=0)
    ] = None,
    latency_b: Annotated[
        float | None, typer.Option("--latency-b", help="Latency of b (ms).", min=0)
    ] = None,
    semascore_a: Annotated[
        float | None, typer.Option("--semascore-a", help="Semantic score of a (0..1).")
    ] = None,
    semascore_b: Annotated[
        float | None, typer.Option("--semascore-b", help="Semantic score of b (0..1).")
    ] = None,
    arena: Arena = "default",
    category: Category = None,
    scenario: Annotated[str | None, typer.Option(help="Scenario, copied to the event.")] = None,
    battle_id: Annotated[
        str | None, typer.Option(help="Default: derived from the event id.")
    ] = None,
    occurred_at: OccurredAt = None,
    transcribe: Transcribe = None,
    whisper_model: WhisperModel = None,
    renormalise: Renormalise = False,
    dry_run: DryRun = False,
) -> None:
    """Judge two clips by composite and publish battle.completed (judge "auto")."""
    from arbiter.evals.manifest import BattleRow  # lazy: loads numpy (0.1 s); --help need not

    if a == b:
        raise fail_literal("--a and --b must name two different competitors")
    check_files(audio_a, audio_b)
    do_transcribe = reference is not None if transcribe is None else transcribe
    require_extra(do_transcribe)
    check_whisper(do_transcribe, whisper_model)
    row = BattleRow(
        line=0, audio_a=audio_a, audio_b=audio_b, competitor_a=a, competitor_b=b, arena=arena,
        category=category, battle_id=battle_id, scenario=scenario, reference=reference,
        latency_a_ms=latency_a, latency_b_ms=latency_b, semascore_a=semascore_a,
        semascore_b=semascore_b, occurred_at=parse_occurred_at(occurred_at),
    )  # fmt: skip
    event = evaluate_one(row, do_transcribe, whisper_model, renormalise)
    _battle_report(event, output(dry_run))
    publish_or_print(event, dry_run)


def _battle_report(event: dict[str, Any], out: Console) -> None:
    """Both metric sets side by side, then the verdict and what it was decided on."""
    ma, mb = event["metrics"]["a"], event["metrics"]["b"]
    table = Table(title=escape(f"battle {event['battle_id']}"))
    table.add_column("metric")
    table.add_column(escape(f"a: {event['a']}"), justify="right")
    table.add_column(escape(f"b: {event['b']}"), justify="right")
    for name in (*SHOWN, *sorted((set(ma) | set(mb)) - set(SHOWN))):
        if name in ma or name in mb:
            table.add_row(name, fmt_metric(ma.get(name)), fmt_metric(mb.get(name)))
    out.print(table)
    judge = event["meta"]["auto_judge"]
    winner = {"a": f"a ({event['a']}) wins", "b": f"b ({event['b']}) wins", "tie": "tie"}
    verdict = (
        f"verdict: {winner[event['outcome']]}, composite {judge['composite_a']:.4f} vs "
        f"{judge['composite_b']:.4f} (tie below {judge['tie_threshold']}), compared on "
        f"{', '.join(judge['compared_on'])}"
    )
    if judge["missing"]:
        rule = "weights renormalised" if judge["renormalised"] else "counted 0, as seed 000 does"
        verdict += f"; not measured: {', '.join(judge['missing'])} ({rule})"
    out.print(verdict, soft_wrap=True, markup=False)


@evals_app.command("trial")
def trial(
    audio: AudioArg,
    competitor: Annotated[str, typer.Option(help="Competitor who produced the clip.")],
    experiment: Annotated[str, typer.Option(help="Experiment id.")],
    trial_id: Annotated[str, typer.Option(help="Trial id.")],
    prompt_index: Annotated[int, typer.Option(help="Index of the prompt (>= 0).", min=0)],
    reference: Reference = None,
    latency: Annotated[float | None, typer.Option("--latency", help="Latency (ms).", min=0)] = None,
    semascore: Annotated[float | None, typer.Option(help="Semantic score (0..1).")] = None,
    metric: Annotated[
        list[str] | None,
        typer.Option("--metric", help="Extra number to carry, NAME=VALUE (repeatable)."),
    ] = None,
    dimension: Annotated[
        list[str] | None,
        typer.Option("--dimension", help="A dimension, NAME=VALUE (repeatable)."),
    ] = None,
    arena: Arena = "default",
    category: Category = None,
    occurred_at: OccurredAt = None,
    transcribe: Transcribe = None,
    whisper_model: WhisperModel = None,
    dry_run: DryRun = False,
) -> None:
    """Measure one clip and publish trial.completed with its metrics.

    A file that exists but cannot be decoded is the trial's result: it is published with
    status "failed" and the decoder's error, as ``evals run`` does.
    """
    from arbiter.evals.manifest import TrialRow  # lazy: loads numpy (0.1 s); --help need not

    check_files(audio)
    extra: dict[str, float] = {}
    for name, text in pairs(metric or [], "--metric").items():
        try:
            extra[name] = float(text)
        except ValueError:
            raise fail_literal(f"--metric {name}: {text!r} is not a number") from None
    do_transcribe = reference is not None if transcribe is None else transcribe
    require_extra(do_transcribe)
    check_whisper(do_transcribe, whisper_model)
    row = TrialRow(
        line=0, audio=audio, competitor=competitor, experiment_id=experiment, trial_id=trial_id,
        prompt_index=prompt_index, arena=arena, category=category, reference=reference,
        latency_ms=latency, semascore=semascore, extra_metrics=extra,
        dimensions=pairs(dimension or [], "--dimension"),
        occurred_at=parse_occurred_at(occurred_at),
    )  # fmt: skip
    event = evaluate_one(row, do_transcribe, whisper_model)
    out = output(dry_run)
    if event["status"] == "failed":
        out.print(f"[yellow]trial failed[/yellow]: {escape(str(event.get('error')))}")
    else:
        table = Table(title=escape(f"trial {experiment}/{trial_id} ({competitor})"))
        table.add_column("metric")
        table.add_column("value", justify="right")
        metrics = event["metrics"]
        for name in (*SHOWN, *sorted(set(metrics) - set(SHOWN))):
            if name in metrics:
                table.add_row(name, fmt_metric(metrics[name]))
        out.print(table)
    publish_or_print(event, dry_run)


evals_app.command("run")(run)
