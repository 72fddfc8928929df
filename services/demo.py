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

DEMO_COMPETITORS = [
    ("gpt-voice", "OpenAI"), ("claude-voice", "Anthropic"), ("gemini-live", "Google"),
    ("llama-speak", "Meta"), ("mistral-talk", "Mistral"), ("qwen-audio", "Alibaba"),
    ("sesame-csm", "Sesame"), ("kyutai-moshi", "Kyutai"),
]  # fmt: skip


def demo_events(battles: int = 2_000, seed: int = 7, arena: str = "demo") -> list[dict[str, Any]]:
    """Registrations, then ``battles`` battles with outcomes drawn from hidden strengths."""
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
        events.append(
            {
                "type": "battle.completed", "event_id": f"demo-{seed}-battle-{i}",
                "occurred_at": (start + timedelta(minutes=i)).isoformat(), "arena": arena,
                "category": rng.choice(categories), "battle_id": f"demo-{seed}-{i}",
                "a": a, "b": b, "outcome": outcome,
                "judge": "human" if rng.random() < 0.3 else "auto", "source": "arbiter-demo",
            }
        )  # fmt: skip
    return events
