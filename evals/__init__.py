"""Audio evaluation and the auto-judge (optional extra: ``pip install arbiter[evals]``).

Modules, from the samples up:

- ``audio``: load any decodable file as 16 kHz mono float32; clipping measured as stored.
- ``metrics``: silence, timing, loudness, SNR (one framing, numpy only).
- ``pitch``: F0 and voicing with librosa's pYIN.
- ``scores``: prosody_score and quality_score (0..1) from those metrics.
- ``text``, ``wer``: benchmark-style normalisation; WER/CER by edit distance.
- ``whisper_model``: Whisper from local weights only, once per process.
- ``composite``: the weighted composite and the auto-winner rule (seed 000's by default, from
  ``arbiter.domain.composite``; renormalised on request).
- ``evaluate``: one clip -> EvalResult (flat finite metrics + composite).
- ``judge``: pure builders of battle.completed / trial.completed events.
- ``manifest``: batch runs from CSV/JSONL in worker processes, with resume.
- ``synthetic``: test signals with known answers.

Nothing here is imported eagerly, so ``import arbiter.evals`` is cheap and does not need the
extra installed; the modules that need librosa, soundfile, torch or whisper import them when
first used.
"""

__all__: list[str] = []
