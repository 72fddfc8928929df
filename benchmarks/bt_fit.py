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

``--chatbot-arena``: instead, the real Chatbot Arena counts of ``../shared/realdata``
(129 competitors, 3,460 pairs, 1,670,250 battles of 2024-08-14, both kinds of tie as ties), as
the API fits them: the stored pair rows -> ``PairCounts.from_rows``, then the fit and
``--rounds`` bootstrap rounds anchored like the public board (mixtral-8x7b-instruct-v0.1 at
1114, scale 400, base 10, initial 1000); prints the top of the board with intervals and how its
order compares with leaderbot's published top 20 (a rank reference only: its own model).

``--control N``: the controlled (style control) fit on N seeded battles with two covariates
(a length that the stronger side tends to have more of, and a noise count), ``--rounds``
rounds: its cost grows with the battles, unlike the pair-count fit.

Usage::

    python benchmarks/bt_fit.py [--battles 1000000] [--competitors 100] [--rounds 100]
                                [--seed 1] [--tie-rate 0.1] [--repeat 3] [--no-json]
    python benchmarks/bt_fit.py --chatbot-arena [--rounds 100] [--repeat 3]
    python benchmarks/bt_fit.py --control 100000 --competitors 100 [--rounds 100]

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


def timed_cpu(repeat: int, fn: Callable[[], T]) -> tuple[T, dict[str, float]]:
    """Wall and CPU seconds of this process (best and median): on a shared, loaded host the
    CPU time is what the work costs (the wall time of an idle core), the wall time what the
    run got."""
    walls, cpus = [], []
    result: T
    for _ in range(repeat):
        w0, c0 = time.perf_counter(), time.process_time()
        result = fn()
        walls.append(time.perf_counter() - w0)
        cpus.append(time.process_time() - c0)
    return result, {
        **summary(walls),
        "cpu_best_s": min(cpus),
        "cpu_median_s": statistics.median(cpus),
    }


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
    from threadpoolctl import threadpool_info

    blas = [(x.get("internal_api"), x.get("num_threads")) for x in threadpool_info()]
    return {
        "blas_threads": blas,
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


ARENA_COUNTS = REPO.parent / "shared" / "realdata" / "chatbotarena_20240814_counts.json"
LEADERBOT = ARENA_COUNTS.with_name("leaderbot_leaderboard_20240814.txt")


def run_arena(args: argparse.Namespace) -> dict[str, Any]:
    data = json.loads(ARENA_COUNTS.read_text())
    models = data["models"]
    stored = [
        (models[i], models[j], float(a), float(b), float(t1 + t2))
        for (i, j), (a, b, t1, t2) in zip(data["X"], data["Y"], strict=True)
    ]
    counts, t_rows = timed_cpu(args.repeat, lambda: bt.PairCounts.from_rows(stored))
    settings = {"initial": 1000.0, "anchor": bt.CHATBOT_ARENA_ANCHOR}
    _, t_fit = timed_cpu(args.repeat, lambda: bt.fit(counts, initial=1000.0))
    board, t_board = timed_cpu(
        args.repeat,
        lambda: bt.leaderboard(counts, rounds=args.rounds, seed=args.seed, **settings),  # type: ignore[arg-type]
    )
    published = []  # leaderbot's names are cut at 20 characters and end in "..."
    for line in LEADERBOT.read_text().splitlines():
        parts = line.strip("| ").split()
        if len(parts) > 1 and parts[0].rstrip(".").isdigit():
            published.append(parts[1].removesuffix("..."))
    ours = [next((k for k, c in enumerate(board.competitors) if c.startswith(p)), None)
            for p in published]  # fmt: skip
    return {
        "config": vars(args),
        "machine": machine_info(),
        "battles": counts.battles,
        "pairs": int(counts.i.size),
        "competitors": len(counts.competitors),
        "from_rows": t_rows,
        "fit": t_fit,
        "leaderboard": t_board,
        "peak_rss_mib": peak_rss_mib(),
        "top": board.rows()[:20],
        "leaderbot_top20_our_positions": [None if k is None else k + 1 for k in ours],
    }


def _line(name: str, s: dict[str, float]) -> str:
    return (
        f"  {name:<34} wall best {s['best_s']:7.3f} s median {s['median_s']:7.3f} s | "
        f"CPU best {s['cpu_best_s']:7.3f} s median {s['cpu_median_s']:7.3f} s"
    )


def render_arena(r: dict[str, Any]) -> str:
    m = r["machine"]
    return "\n".join(
        [
            f"machine: {m['cpu_model']}, {m['usable_cores']} usable cores, "
            f"load {m['load_average_at_start']}, {m['python']}, "
            f"numpy {m['packages'].get('numpy')}, BLAS threads {m['blas_threads']}",
            f"data:    Chatbot Arena 2024-08-14: {r['battles']:,.0f} battles, "
            f"{r['competitors']} competitors, {r['pairs']:,} pairs",
            _line("PairCounts.from_rows (stored rows)", r["from_rows"]),
            _line("fit (cold start)", r["fit"]),
            _line(f"fit + {r['config']['rounds']} rounds, anchored", r["leaderboard"]),
            f"peak RSS {r['peak_rss_mib']:,.0f} MiB",
            "top 20 (mixtral-8x7b-instruct-v0.1 = 1114):",
            *(f"  {k:>3} {c:<36} {x:7.1f} [{lo:7.1f}, {hi:7.1f}]" for k, c, x, lo, hi in r["top"]),
            "leaderbot's top 20, our positions: "
            + ", ".join(str(p) for p in r["leaderbot_top20_our_positions"]),
        ]
    )


def run_control(args: argparse.Namespace) -> dict[str, Any]:
    rng = np.random.default_rng(args.seed)
    n = args.competitors
    skill = rng.normal(0.0, 0.5, n)
    a = rng.integers(0, n, args.control)
    b = (a + rng.integers(1, n, args.control)) % n
    la = np.maximum(0, rng.normal(400 + 150 * skill[a], 120))
    lb = np.maximum(0, rng.normal(400 + 150 * skill[b], 120))
    z = skill[a] - skill[b] + 2.0 * (la - lb) / (la + lb + 1)
    won = rng.random(args.control) < 1 / (1 + np.exp(-z))
    ma, mb = rng.integers(0, 6, args.control), rng.integers(0, 6, args.control)
    names = [f"model-{k:04d}" for k in range(n)]
    rows = [
        (names[i], names[j], float(w), float(not w), 0.0, (x1, x2), (y1, y2))
        for i, j, w, x1, x2, y1, y2 in zip(
            a.tolist(), b.tolist(), won.tolist(), la.tolist(), ma.tolist(), lb.tolist(),
            mb.tolist(), strict=True,
        )
    ]  # fmt: skip
    battles, t_rows = timed_cpu(1, lambda: bt.ControlledBattles.from_rows(rows, ("length", "bold")))
    _, t_fit = timed_cpu(args.repeat, lambda: bt.fit_controlled(battles))
    result, t_board = timed_cpu(
        args.repeat,
        lambda: bt.controlled_leaderboard(battles, rounds=args.rounds, seed=args.seed),
    )
    return {
        "config": vars(args),
        "machine": machine_info(),
        "battles": args.control,
        "from_rows": t_rows,
        "fit": t_fit,
        "leaderboard": t_board,
        "peak_rss_mib": peak_rss_mib(),
        "covariates": [msgspec_builtins(c) for c in result.covariates],
    }


def msgspec_builtins(value: Any) -> Any:
    import msgspec

    return msgspec.to_builtins(value)


def render_control(r: dict[str, Any]) -> str:
    m, cfg = r["machine"], r["config"]
    return "\n".join(
        [
            f"machine: {m['cpu_model']}, {m['usable_cores']} usable cores, "
            f"load {m['load_average_at_start']}, BLAS threads {m['blas_threads']}",
            f"data:    {r['battles']:,} battles, {cfg['competitors']} competitors, 2 covariates",
            _line("ControlledBattles.from_rows", r["from_rows"]),
            _line("fit_controlled (cold start)", r["fit"]),
            _line(f"fit + {cfg['rounds']} rounds", r["leaderboard"]),
            f"peak RSS {r['peak_rss_mib']:,.0f} MiB",
            "coefficients: "
            + "; ".join(
                f"{c['metric']} {c['coefficient']:.3f} [{c['lower']:.3f}, {c['upper']:.3f}]"
                for c in r["covariates"]
            ),
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
    p.add_argument("--chatbot-arena", action="store_true", help="the real arena counts")
    p.add_argument("--control", type=int, default=0, help="controlled fit on N battles")
    p.add_argument(
        "--blas-threads", type=int, default=1, help="BLAS threads (the API uses 1; 0: default)"
    )
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.blas_threads:
        from threadpoolctl import threadpool_limits

        threadpool_limits(args.blas_threads, user_api="blas")
    if args.competitors < 2 or args.battles < 1 or args.repeat < 1:
        print("need --competitors >= 2, --battles >= 1, --repeat >= 1", file=sys.stderr)
        return 2
    if args.chatbot_arena:
        results = run_arena(args)
        print(render_arena(results))
    elif args.control:
        results = run_control(args)
        print(render_control(results))
    else:
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
