"""``/ui/battles/{id}`` and ``/ui/games/{id}``: one result with everything the JSON routes
hold about it (sides and metrics, votes, the auto-judge's verdict, the Elo change; a game's
participants by rank), from the same query functions."""

from __future__ import annotations

import json
from typing import Any

from litestar import get
from litestar.di import NamedDependency
from litestar.params import FromPath
from litestar.response import Template

from ..api.errors import not_found
from ..api.queries.results import battle, game
from ..api.store import ReadStore
from .units import unit_of

__all__ = ["HANDLERS", "battle_page", "game_page"]


def _json(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, default=str)


@get("/ui/battles/{battle_id:str}", name="web-battle")
async def battle_page(reads: NamedDependency[ReadStore], battle_id: FromPath[str]) -> Template:
    """One battle: both sides' metrics, the outcome, votes and Elo change."""
    found = await battle(reads, battle_id)
    if found is None:
        raise not_found(f"Unknown battle {battle_id!r}.")
    metrics = found.metrics or {}
    names = sorted({n for side in metrics.values() for n in side})
    return Template(
        template_name="battle.html",
        context={
            "b": found,
            "metric_rows": [
                (n, unit_of(n), metrics.get("a", {}).get(n), metrics.get("b", {}).get(n))
                for n in names
            ],
            "meta": _json(found.meta) if found.meta else None,
        },
    )


@get("/ui/games/{game_id:str}", name="web-game")
async def game_page(reads: NamedDependency[ReadStore], game_id: FromPath[str]) -> Template:
    """One game: participants best rank first, with scores."""
    found = await game(reads, game_id)
    if found is None:
        raise not_found(f"Unknown game {game_id!r}.")
    return Template(
        template_name="game.html",
        context={"g": found, "meta": _json(found.meta) if found.meta else None},
    )


HANDLERS = (battle_page, game_page)
