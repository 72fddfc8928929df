"""Speed of the audio evaluators: real-time factor per clip and manifest throughput.

    python benchmarks/evals_rtf.py [--clips 100] [--clip-seconds 5] [--workers 0 1 2]
        [--whisper PATH_OR_NAME ...] [--clip SPEECH.wav --reference TEXT] [--runner-whisper]

Real-time factor (RTF) = processing seconds / audio seconds for one clip (median of --repeats
runs after a warm-up that loads the model): metric extraction alone, then with each Whisper
model. The clip is a 10 s synthetic speech-like signal unless --clip gives a recording.
Without --whisper, two random-weight checkpoints are built: the test dims and the real "tiny"
architecture (4+4 layers, width 384). Random weights decode an arbitrary number of tokens, so
their figures only indicate cost; pass a real checkpoint (see evals_ct2_to_whisper.py) and a
real recording for real figures.

Throughput = rows / wall seconds of run_manifest over --clips trial rows, including worker
start-up (spawn, imports, model load), for each --workers value (0: in the calling process).
Rows use synthetic clips of --clip-seconds, or all point at --clip when one is given.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
from arbiter.evals.audio import Audio, load_audio
from arbiter.evals.evaluate import evaluate
from arbiter.evals.manifest import run_manifest
from arbiter.evals.synthetic import SR, speechlike
from arbiter.evals.whisper_model import clear_cache, default_device, resolve_model
from rich.console import Console
from rich.table import Table

REFERENCE = " ".join(["the quick brown fox jumps over the lazy dog"] * 3)


def random_checkpoint(folder: Path, name: str, width: int, heads: int, layers: int) -> Path:
    """A Whisper checkpoint with random weights and the given size (loads via load_model)."""
    import torch
    from whisper.model import ModelDimensions, Whisper

    torch.manual_seed(0)
    dims = ModelDimensions(80, 1500, width, heads, layers, 51865, 448, width, heads, layers)
    model = Whisper(dims)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.02)
    path = folder / f"{name}.pt"
    torch.save({"dims": dataclasses.asdict(dims), "model_state_dict": model.state_dict()}, path)
    return path


def time_clip(audio: Audio, repeats: int, model: str | None, reference: str) -> tuple[float, float]:
    """(median seconds, WER) to evaluate the clip; model None = no transcription. One warm-up
    run first, which also loads the model."""
    from arbiter.evals.whisper_model import transcribe as whisper_transcribe

    transcribe = model is not None
    transcriber = (lambda s: whisper_transcribe(s, spec=model)) if transcribe else None
    result = evaluate(audio, reference, transcribe=transcribe, transcriber=transcriber)
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        evaluate(audio, reference, transcribe=transcribe, transcriber=transcriber)
        runs.append(time.perf_counter() - start)
    return statistics.median(runs), result.metrics.get("wer", float("nan"))


def write_manifest(
    folder: Path, clips: int, seconds: float, clip: Path | None, reference: str
) -> Path:
    """A trial manifest of ``clips`` rows (synthetic files, or all rows on ``clip``)."""
    manifest = folder / "manifest.csv"
    with manifest.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(
            [
                "audio",
                "competitor",
                "experiment_id",
                "trial_id",
                "prompt_index",
                "reference",
                "latency_ms",
            ]
        )
        for i in range(clips):
            if clip is None:
                path = folder / f"clip{i:03d}.wav"
                sf.write(path, speechlike(seconds, seed=i, noise_dbfs=-50 + (i % 20)), SR)
            else:
                path = clip.resolve()
            writer.writerow([path, f"comp{i % 4}", "bench", f"t{i}", i % 10, reference, 200 + i])
    return manifest


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=int, default=100)
    parser.add_argument("--clip-seconds", type=float, default=5.0)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--whisper", nargs="*", default=None, help="checkpoint paths or names")
    parser.add_argument("--clip", type=Path, default=None, help="a speech recording to time")
    parser.add_argument("--reference", default=REFERENCE, help="what --clip says (for WER)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--runner-whisper",
        action="store_true",
        help="also time the manifest runner with the first Whisper model",
    )
    args = parser.parse_args()
    console = Console()

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        if args.whisper:
            models = [(resolve_model(m).label, m) for m in args.whisper]
        else:
            models = [
                (
                    "random, test dims (64 wide, 1+1 layers)",
                    str(random_checkpoint(folder, "rand-test", 64, 2, 1)),
                ),
                (
                    "random, tiny dims (384 wide, 4+4 layers)",
                    str(random_checkpoint(folder, "rand-tiny", 384, 6, 4)),
                ),
            ]
        if args.clip is not None:
            audio, name = load_audio(args.clip), args.clip.name
        else:
            audio, name = Audio.from_array(speechlike(10.0, seed=42), SR), "synthetic"
        length = audio.duration_s
        rtf = Table(
            title=f"Per-clip real-time factor ({name}, {length:.1f} s, "
            f"{default_device()}, {os.cpu_count()} CPUs)"
        )
        for column in ("pipeline", "seconds", "RTF", "x real time", "WER"):
            rtf.add_column(column, justify="left" if column == "pipeline" else "right")
        seconds, _ = time_clip(audio, args.repeats, None, args.reference)
        rtf.add_row(
            "metrics only (pyin, silence, levels)",
            f"{seconds:.3f}",
            f"{seconds / length:.4f}",
            f"{length / seconds:.0f}",
            "-",
        )
        for label, spec in models:
            seconds, wer = time_clip(audio, args.repeats, spec, args.reference)
            rtf.add_row(
                f"metrics + Whisper {label}",
                f"{seconds:.3f}",
                f"{seconds / length:.4f}",
                f"{length / seconds:.1f}",
                f"{wer:.3f}",
            )
            clear_cache()
        console.print(rtf)

        manifest = write_manifest(folder, args.clips, args.clip_seconds, args.clip, args.reference)
        runs = [(w, False) for w in args.workers]
        if args.runner_whisper and models:
            runs += [(w, True) for w in args.workers]
        each = f"{length:.1f} s {name}" if args.clip else f"{args.clip_seconds:g} s synthetic"
        thr = Table(title=f"Manifest runner: {args.clips} trial rows of {each}")
        for column in ("workers", "whisper", "wall s", "clips/s", "audio s per s"):
            thr.add_column(column, justify="right")
        clip_s = length if args.clip else args.clip_seconds
        for workers, with_whisper in runs:
            published: list[dict] = []
            start = time.perf_counter()
            summary = run_manifest(
                manifest,
                published.extend,
                workers=workers,
                transcribe=with_whisper,
                whisper_model=models[0][1],
            )
            wall = time.perf_counter() - start
            assert summary.published == args.clips, summary
            assert all(np.isfinite(v) for e in published for v in e["metrics"].values())
            thr.add_row(
                str(workers),
                models[0][0] if with_whisper else "no",
                f"{wall:.1f}",
                f"{args.clips / wall:.2f}",
                f"{args.clips * clip_s / wall:.0f}",
            )
        console.print(thr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
