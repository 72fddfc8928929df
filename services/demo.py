"""``arbiter demo``: a synthetic tournament, so a new user sees a leaderboard within a minute.

Competitors get hidden strengths on the Elo scale; each battle's winner is drawn from the Elo
win probability of those strengths (with some ties), so the leaderboard that emerges should
recover the hidden order. Seeded: the same seed publishes the same events (and event ids, so
running the demo twice adds nothing the second time).
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

__all__ = ["DEMO_COMPETITORS", "demo_events"]

DEMO_COMPETITORS = [
    ("gpt-voice", "OpenAI"), ("claude-voice", "Anthropic"), ("gemini-live", "Google"),
    ("llama-speak", "Meta"), ("mistral-talk", "Mistral"), ("qwen-audio", "Alibaba"),
    ("sesame-csm", "Sesame"), ("kyutai-moshi", "Kyutai"),
]  # fmt: skip


def demo_events(battles: int = 2_000, seed: int = 7, arena: str = "demo") -> list[dict[str, Any]]:
    """Registrations, ``battles`` battles with outcomes drawn from hidden strengths (one in ten
    awaiting votes, which two human voters then cast), a few 4-player games in ``<arena>-games``
    and a small TTS experiment with trials and score votes in ``<arena>-tts``."""
    rng = random.Random(seed)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    strength = {name: 1500 + 60 * (len(DEMO_COMPETITORS) / 2 - i) for i, (name, _) in
                enumerate(DEMO_COMPETITORS)}  # fmt: skip
    events: list[dict[str, Any]] = [
        {
            "type": "competitor.registered", "event_id": f"demo-{seed}-reg-{name}",
            "occurred_at": start.isoformat(), "arena": arena, "competitor": name,
            "name": name.replace("-", " ").title(), "provider": provider,
        }
        for name, provider in DEMO_COMPETITORS
    ]  # fmt: skip
    names = [n for n, _ in DEMO_COMPETITORS]
    categories = ["support", "sales", "booking"]
    for i in range(battles):
        a, b = rng.sample(names, 2)
        p_a = 1 / (1 + 10 ** ((strength[b] - strength[a]) / 400))
        r = rng.random()
        outcome = "tie" if abs(r - p_a) < 0.05 else ("a" if r < p_a else "b")
        at = (start + timedelta(minutes=i)).isoformat()
        pending = i % 10 == 9
        events.append(
            {
                "type": "battle.completed", "event_id": f"demo-{seed}-battle-{i}",
                "occurred_at": at, "arena": arena,
                "category": rng.choice(categories), "battle_id": f"demo-{seed}-{i}",
                "a": a, "b": b, "outcome": None if pending else outcome,
                "judge": "human" if rng.random() < 0.3 else "auto", "source": "arbiter-demo",
                "metrics": {
                    side: {"wer": round(rng.uniform(0.02, 0.2), 3),
                           "latency_ms": round(rng.uniform(300, 1200))}
                    for side in ("a", "b")
                },
            }
        )  # fmt: skip
        if pending:
            for voter in ("ann", "bob"):
                events.append(
                    {
                        "type": "vote.cast", "event_id": f"demo-{seed}-vote-{i}-{voter}",
                        "occurred_at": at, "vote_id": f"demo-{seed}-{i}-{voter}",
                        "voter": voter, "battle_id": f"demo-{seed}-{i}", "choice": outcome,
                    }
                )  # fmt: skip
    return (
        events
        + _games(rng, names, strength, seed, f"{arena}-games", start)
        + _experiment(rng, names[:3], seed, f"{arena}-tts", start)
    )


def _games(
    rng: random.Random,
    names: list[str],
    strength: dict[str, float],
    seed: int,
    arena: str,
    start: datetime,
) -> list[dict[str, Any]]:
    """4-player games ranked by noisy strength (equal ranks tie)."""
    out = []
    for g in range(40):
        players = rng.sample(names, 4)
        noisy = sorted(players, key=lambda p: -(strength[p] + rng.gauss(0, 80)))
        out.append({
            "type": "game.completed", "event_id": f"demo-{seed}-game-{g}",
            "occurred_at": (start + timedelta(hours=g)).isoformat(), "arena": arena,
            "game_id": f"demo-{seed}-game-{g}",
            "participants": [{"competitor": p, "rank": r + 1} for r, p in enumerate(noisy)],
            "source": "arbiter-demo",
        })  # fmt: skip
    return out


def _experiment(
    rng: random.Random, names: list[str], seed: int, arena: str, start: datetime
) -> list[dict[str, Any]]:
    """An experiment of 8 prompts x 3 competitors with latency metrics, and score votes."""
    out: list[dict[str, Any]] = []
    for prompt in range(8):
        for n, name in enumerate(names):
            trial = f"demo-{seed}-trial-{prompt}-{name}"
            failed = rng.random() < 0.05
            out.append({
                "type": "trial.completed", "event_id": trial,
                "occurred_at": (start + timedelta(minutes=prompt)).isoformat(), "arena": arena,
                "experiment_id": f"demo-{seed}-tts", "trial_id": trial, "competitor": name,
                "prompt_index": prompt, "status": "failed" if failed else "completed",
                "metrics": {} if failed else {
                    "ttfb_ms": round(rng.uniform(150, 600) + 60 * n),
                    "generation_time_ms": round(rng.uniform(800, 2500)),
                    "duration_s": round(rng.uniform(2, 6), 2),
                    "silence_ratio": round(rng.uniform(0.05, 0.3), 3),
                    "cost_usd": round(rng.uniform(0.001, 0.01), 4),
                },
                "dimensions": {"style": rng.choice(["calm", "excited"])},
                "source": "arbiter-demo",
            })  # fmt: skip
            out.append({
                "type": "vote.cast", "event_id": f"{trial}-vote", "occurred_at": start.isoformat(),
                "vote_id": f"{trial}-vote", "voter": "carol", "trial_id": trial,
                "score": rng.randint(2, 5),
            })  # fmt: skip
    return out
