"""Batch auto-judging from a manifest: one row per battle or trial, evaluated in parallel.

Manifest formats: CSV with a header row (``.csv``), JSON Lines (``.jsonl``/``.ndjson``, one
object per line) or a JSON array (``.json``). Empty cells mean "not given". Audio paths are
relative to the manifest's folder unless absolute.

Columns for every row:

==================  ========  ==============================================================
kind                optional  "battle" or "trial"; inferred from audio_a (battle) / audio
arena               optional  rating pool, default "default"
category            optional  sub-pool
occurred_at         optional  RFC 3339 time of the match; default: newest mtime of its audio
reference           optional  the text the clip should say (enables WER/CER, speaking rate)
==================  ========  ==============================================================

Battle rows (two clips, one verdict):

==================  ========  ==============================================================
audio_a, audio_b    required  the two clips
competitor_a/_b     required  their competitor ids (distinct)
battle_id           optional  default: derived from the event id
scenario            optional  copied to the event
latency_a_ms/_b_ms  optional  each side's latency (ms), a composite component
semascore_a/_b      optional  each side's semantic score (0..1), a composite component
==================  ========  ==============================================================

Trial rows (one clip, metrics for an experiment):

==================  ========  ==============================================================
audio               required  the clip
competitor          required  competitor id
experiment_id       required  experiment id
trial_id            required  trial id
prompt_index        required  integer >= 0
latency_ms          optional  latency (ms)
semascore           optional  semantic score (0..1)
ttfb_ms, generation_time_ms, cost_usd, input_tokens, output_tokens
                    optional  producer-side numbers carried into ``metrics``
metric_<name>       optional  any other number, carried as metrics[<name>]
dim_<name>          optional  a dimension, carried as dimensions[<name>] (JSON rows may give
                              ``"metrics": {...}`` and ``"dimensions": {...}`` objects instead)
==================  ========  ==============================================================

Give ``occurred_at`` when the audio files may be touched or copied between runs: the default
(their mtime) is part of the event's content, and a resend of the same event id with different
content is rejected by the ingest.

Unknown columns are an error (a misspelt ``latency_ms`` on a battle row would otherwise be
silently ignored). The whole manifest is checked before anything is evaluated.

Resume: each row's event id depends only on the row and the audio bytes (see judge.py), so it
is computed by hashing the files, before any evaluation. Rows whose id is in ``done`` (ids the
caller knows are published) or in the local state file are skipped without being evaluated.
The state file lists one published event id per line; :func:`run_manifest` appends to it only
after ``publish`` returned, so a crash can cause a re-publish (harmless: the ingest is
idempotent on event id) but never a lost event.

The package, one module per stage: :mod:`.rows` (the columns and the typed rows),
:mod:`.reading` (parsing and checking a manifest file), :mod:`.jobs` (a row's identity and its
evaluation in a worker) and :mod:`.runner` (the parallel, ordered run with resume).
"""

from arbiter.evals.manifest.jobs import Job, evaluate_job, prepare, row_event_id
from arbiter.evals.manifest.reading import read_manifest
from arbiter.evals.manifest.rows import (
    BATTLE_COLUMNS,
    COMMON_COLUMNS,
    DIMENSION_PREFIX,
    METRIC_PREFIX,
    TRIAL_COLUMNS,
    TRIAL_PASSTHROUGH,
    BattleRow,
    ManifestError,
    Row,
    TrialRow,
)
from arbiter.evals.manifest.runner import (
    DoneState,
    Progress,
    Publish,
    RowOutcome,
    RunSummary,
    default_workers,
    iter_events,
    run_manifest,
)

__all__ = [
    "BATTLE_COLUMNS",
    "COMMON_COLUMNS",
    "DIMENSION_PREFIX",
    "METRIC_PREFIX",
    "TRIAL_COLUMNS",
    "TRIAL_PASSTHROUGH",
    "BattleRow",
    "DoneState",
    "Job",
    "ManifestError",
    "Progress",
    "Publish",
    "Row",
    "RowOutcome",
    "RunSummary",
    "TrialRow",
    "default_workers",
    "evaluate_job",
    "iter_events",
    "prepare",
    "read_manifest",
    "row_event_id",
    "run_manifest",
]
