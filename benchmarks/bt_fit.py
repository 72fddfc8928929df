"""Bradley-Terry benchmark: aggregation, the fit and the bootstrap, on seeded battles.

What is measured
----------------
N battles (default 1,000,000) among C competitors (default 100) with hidden ratings drawn from
a seeded normal distribution (sd 200 Elo points, mean 1500). Pairs are uniform over unordered
pairs, sides random; each battle follows the Bradley-Terry model on the Elo scale with ties
that keep the expected score exact: ``P(tie) = 2 * tie_rate * min(p, 1 - p)``, ``P(a won) =
p - P(tie) / 2``, so a tie counted as half a win is an unbiased score and the fit should recover
the hidden ratings up to sampling noise. Ids and outcomes are Python lists of ``str``, as they
come out of the event log. Timed separately (each ``--repeat`` times; best and median printed):

1. ``PairCounts.from_battles``: N battles -> pair counts (name lookup + one ``bincount``);
2. ``fit``: the maximum-likelihood ratings from those counts (cold start);
3. ``bootstrap_samples``: ``--rounds`` resamples (one multinomial draw for all rounds) and
   their fits, warm-started from the point estimate, plus the percentile intervals;
4. ``leaderboard``: all of the above after aggregation, with the ranks and the result struct.

Generating the battles is timed too but is not part of the pipeline. Memory: the RSS after each
phase and the process's lifetime peak (``ru_maxrss``, which includes the generated battles).
Accuracy: the largest and the RMS difference between the fit and the hidden ratings (both
anchored on their mean), against the bootstrap's own standard error, and how many of the 95 %
intervals cover the hidden rating.

Usage::

    python benchmarks/bt_fit.py [--battles 1000000] [--competitors 100] [--rounds 100]
                                [--seed 1] [--tie-rate 0.1] [--repeat 3] [--no-json]

Results are printed and written as JSON to ``benchmarks/results/bt_fit-<UTC time>.json``.
Nothing is asserted: this is a measurement tool.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import psutil
from arbiter.domain import bradley_terry as bt

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results"
MIB = 1024 * 1024
T = TypeVar("T")


def generate(
    battles: int, competitors: int, seed: int, tie_rate: float
) -> tuple[list[str], list[str], list[str], dict[str, float]]:
    rng = np.random.default_rng(seed)
    true = rng.normal(0.0, 200.0, competitors)
    true += 1500.0 - true.mean()
    names = np.array([f"model-{k:04d}" for k in range(competitors)])
    ia = rng.integers(0, competitors, battles)
    ib = (ia + rng.integers(1, competitors, battles)) % competitors
    p = 1.0 / (1.0 + 10.0 ** ((true[ib] - true[ia]) / 400.0))
    p_tie = 2.0 * tie_rate * np.minimum(p, 1.0 - p)
    u = rng.random(battles)
    outcome = np.where(u < p - p_tie / 2, "a", np.where(u < p + p_tie / 2, "tie", "b"))
    return (
        names[ia].tolist(),
        names[ib].tolist(),
        outcome.tolist(),
        dict(zip(names.tolist(), true.tolist(), strict=True)),
    )


def timed(repeat: int, fn: Callable[[], T]) -> tuple[T, list[float]]:
    times = []
    result: T
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return result, times


def rss_mib() -> float:
    return psutil.Process().memory_info().rss / MIB


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def machine_info() -> dict[str, Any]:
    cpu_model = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    cpu_limit = None
    with contextlib.suppress(OSError, ValueError):
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()
        cpu_limit = None if quota == "max" else round(int(quota) / int(period), 2)
    packages = {}
    for name in ("arbiter", "numpy", "msgspec", "psutil"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            packages[name] = metadata.version(name)
    commit = None
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, timeout=10
        ).stdout.strip()
    threads = {
        k: os.environ[k]
        for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
        if k in os.environ
    }
    return {
        "cpu_model": cpu_model,
        "logical_cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "cgroup_cpu_limit": cpu_limit,
        "ram_gib": round(psutil.virtual_memory().total / 1024**3, 1),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "os": platform.platform(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "blas_thread_env": threads,
        "packages": packages,
        "commit": commit,
    }


def summary(times: list[float]) -> dict[str, float]:
    return {"best_s": min(times), "median_s": statistics.median(times), "runs": len(times)}


def run(args: argparse.Namespace) -> dict[str, Any]:
    memory: dict[str, float] = {"start_rss_mib": rss_mib()}
    t0 = time.perf_counter()
    a, b, outcomes, true = generate(args.battles, args.competitors, args.seed, args.tie_rate)
    generate_s = time.perf_counter() - t0
    memory["after_generate_rss_mib"] = rss_mib()

    counts, t_agg = timed(args.repeat, lambda: bt.PairCounts.from_battles(a, b, outcomes))
    memory["after_aggregate_rss_mib"] = rss_mib()
    rating, t_fit = timed(args.repeat, lambda: bt.fit(counts))
    memory["after_fit_rss_mib"] = rss_mib()

    def boot() -> tuple[np.ndarray, np.ndarray]:
        samples = bt.bootstrap_samples(counts, args.rounds, args.seed, point=rating)
        return bt.intervals(samples)

    (lower, upper), t_boot = timed(args.repeat, boot)
    memory["after_bootstrap_rss_mib"] = rss_mib()
    board, t_board = timed(
        args.repeat, lambda: bt.leaderboard(counts, rounds=args.rounds, seed=args.seed)
    )
    memory["peak_rss_mib"] = peak_rss_mib()

    truth = np.array([true[name] for name in counts.competitors])
    error = rating - truth
    stderr = (upper - lower) / (2 * 1.96)
    covered = int(np.sum((lower <= truth) & (truth <= upper)))
    return {
        "config": vars(args),
        "machine": machine_info(),
        "battles": counts.battles,
        "pairs": int(counts.i.size),
        "cells": int(np.count_nonzero([counts.wins_i, counts.wins_j, counts.ties])),
        "ties": float(counts.ties.sum()),
        "generate_s": generate_s,
        "aggregate": summary(t_agg),
        "fit": summary(t_fit),
        "bootstrap": summary(t_boot),
        "leaderboard": summary(t_board),
        "memory": memory,
        "accuracy": {
            "max_abs_error": float(np.max(np.abs(error))),
            "rms_error": float(np.sqrt(np.mean(error**2))),
            "mean_bootstrap_stderr": float(np.mean(stderr)),
            "max_abs_error_in_stderrs": float(np.max(np.abs(error) / stderr)),
            "intervals_covering_truth": covered,
            "competitors": len(counts.competitors),
        },
        "top3": board.rows()[:3],
    }


def render(r: dict[str, Any]) -> str:
    m, acc, mem = r["machine"], r["accuracy"], r["memory"]

    def line(name: str, s: dict[str, float]) -> str:
        return f"  {name:<34} best {s['best_s']:8.3f} s   median {s['median_s']:8.3f} s"

    cfg = r["config"]
    return "\n".join(
        [
            f"machine: {m['cpu_model']}, {m['usable_cores']} usable cores "
            f"(cgroup limit {m['cgroup_cpu_limit']}), {m['ram_gib']} GiB, "
            f"load {m['load_average_at_start']}",
            f"         {m['python']}, numpy {m['packages'].get('numpy')}, {m['os']}",
            f"data:    {r['battles']:,.0f} battles ({r['ties']:,.0f} ties), "
            f"{acc['competitors']} competitors, {r['pairs']:,} pairs, {r['cells']:,} cells, "
            f"seed {cfg['seed']}",
            f"  generate battles (not timed below) {r['generate_s']:8.3f} s",
            line("PairCounts.from_battles", r["aggregate"]),
            line("fit (cold start)", r["fit"]),
            line(f"bootstrap, {cfg['rounds']} rounds + intervals", r["bootstrap"]),
            line("leaderboard (fit+bootstrap+rank)", r["leaderboard"]),
            "memory:  RSS MiB  "
            + ", ".join(f"{k.removesuffix('_rss_mib')} {v:,.0f}" for k, v in mem.items()),
            f"accuracy: max |fit - true| {acc['max_abs_error']:.2f} Elo, "
            f"RMS {acc['rms_error']:.2f}, mean bootstrap s.e. {acc['mean_bootstrap_stderr']:.2f} "
            f"(max error {acc['max_abs_error_in_stderrs']:.1f} s.e.), "
            f"95 % intervals covering truth {acc['intervals_covering_truth']}/{acc['competitors']}",
            "top 3:   "
            + "; ".join(f"#{k} {c} {x:.1f} [{lo:.1f}, {hi:.1f}]" for k, c, x, lo, hi in r["top3"]),
        ]
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--battles", type=int, default=1_000_000)
    p.add_argument("--competitors", type=int, default=100)
    p.add_argument("--rounds", type=int, default=100)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--tie-rate", type=float, default=0.1, help="ties among even battles")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--no-json", action="store_true")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.competitors < 2 or args.battles < 1 or args.repeat < 1:
        print("need --competitors >= 2, --battles >= 1, --repeat >= 1", file=sys.stderr)
        return 2
    results = run(args)
    print(render(results))
    if not args.no_json:
        RESULTS.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        path = RESULTS / f"bt_fit-{stamp}.json"
        path.write_text(json.dumps(results, indent=2, default=str))
        print(f"results: {path.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
