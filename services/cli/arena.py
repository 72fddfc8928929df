"""``arbiter arena configure NAME``: publish an ``arena.configured`` event from flags, or from a
preset of a public board's settings, and say what the log made of it.

``--preset chatbot-arena`` is the public Chatbot Arena board (lmarena.ai, FastChat's
``compute_mle_elo``): K 4, initial 1000, scale 400, base 10, every judge weight 1 (``weights``
is replaced as a whole, so judge kinds weighted before count 1 again), and the Bradley-Terry
boards anchored like the public one (``mixtral-8x7b-instruct-v0.1`` at 1114; a pool without
that competitor shows the mean). Any flag given beside a preset overrides the preset's value.
The event is a patch: settings neither the flags nor the preset name keep their value. It is
validated with the ingest's own rules before it is published (a value they refuse, such as a
negative K or a weight spelled ``Human``, is a bad flag: exit 2, nothing published), then
published through :class:`~arbiter.services.delivery.Delivery`, like ``arbiter publish``; exit 1
when the log refuses it.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from arbiter.domain.bradley_terry.anchor import CHATBOT_ARENA_ANCHOR, parse_anchor
from arbiter.domain.rejections import Rejection
from arbiter.domain.validation import decode_event
from rich.markup import escape

from .common import WaitOption, console, fail
from .publish import _deliver, _summary

__all__ = ["PRESETS", "arena_app", "configure"]

arena_app = typer.Typer(help="Arena settings.", no_args_is_help=True)

PRESETS: dict[str, dict[str, Any]] = {
    "chatbot-arena": {
        "k": 4.0,
        "initial": 1000.0,
        "scale": 400.0,
        "base": 10.0,
        "weights": {"auto": 1.0, "human": 1.0},
        "bt_anchor": {"competitor": CHATBOT_ARENA_ANCHOR[0], "rating": CHATBOT_ARENA_ANCHOR[1]},
    },
}
"""Named settings of public boards: the fields of an ``arena.configured`` event."""


def _weights(pairs: list[str]) -> dict[str, float]:
    out: dict[str, float] = {}
    for pair in pairs:
        kind, sep, value = pair.partition("=")
        try:
            number = float(value)
        except ValueError:
            kind, sep = "", ""
        if not sep or not kind:
            raise fail(f"--weight {pair!r}: expected KIND=WEIGHT, e.g. --weight human=1.5")
        if kind in out:  # the last would silently win
            twice = f"{out[kind]:g} and {number:g}"
            raise fail(f"--weight {escape(kind)} is given twice ({twice}); give it once")
        out[kind] = number
    return out


def configure(
    name: Annotated[str, typer.Argument(help="The arena.")],
    k: Annotated[float | None, typer.Option(help="Elo K factor.")] = None,
    initial: Annotated[float | None, typer.Option(help="Rating of a new competitor.")] = None,
    scale: Annotated[float | None, typer.Option(help="Elo scale (400).")] = None,
    base: Annotated[float | None, typer.Option(help="Elo base (10).")] = None,
    weight: Annotated[
        list[str] | None,
        typer.Option(help="KIND=W: K multiplier of a judge kind (repeat; replaces all weights)."),
    ] = None,
    strict: Annotated[
        bool | None, typer.Option("--strict/--no-strict", help="Refuse unregistered competitors.")
    ] = None,
    anchor: Annotated[
        str | None,
        typer.Option(help="Default Bradley-Terry anchor COMPETITOR:RATING, or `mean`."),
    ] = None,
    preset: Annotated[
        str | None, typer.Option(help=f"Settings of a public board: {', '.join(PRESETS)}.")
    ] = None,
    wait: WaitOption = True,
) -> None:
    """Publish the arena's settings (an ``arena.configured`` event) and print it."""
    if preset is not None and preset not in PRESETS:
        raise fail(f"--preset {preset!r}: accepted presets are {', '.join(PRESETS)}")
    fields: dict[str, Any] = dict(PRESETS[preset]) if preset else {}
    given = {"k": k, "initial": initial, "scale": scale, "base": base, "strict": strict}
    fields.update({key: value for key, value in given.items() if value is not None})
    if weight:
        fields["weights"] = _weights(weight)
    if anchor == "mean":
        fields["bt_anchor"] = "mean"
    elif anchor is not None:
        try:
            competitor, rating = parse_anchor(anchor)
        except ValueError as exc:
            raise fail(f"--anchor: {exc}, or `mean`") from None
        fields["bt_anchor"] = {"competitor": competitor, "rating": rating}
    if not fields:
        raise fail("nothing to configure: give --preset or at least one setting")
    event = {
        "type": "arena.configured", "event_id": f"arena-{uuid.uuid4()}",
        "occurred_at": datetime.now(UTC).isoformat(), "arena": name, "source": "arbiter-cli",
        **fields,
    }  # fmt: skip
    text = json.dumps(event, sort_keys=True)
    checked = decode_event(text.encode())  # the ingest's own rules: a bad flag is exit 2 here
    if isinstance(checked, Rejection):
        raise fail(f"not published: {escape(checked.message)}")
    console.print(f"publishing: {text}", soft_wrap=True, markup=False, highlight=False)

    async def feed(delivery: Any) -> None:
        await delivery.add("event 1", text.encode())

    report = _deliver("publishing", 1, feed, wait=wait)
    _summary(report, "1 event", "event", waited=wait)


arena_app.command("configure")(configure)
