"""The battle fast lane of the append's decisions equals the general rules: same decisions, same
facts after, on random batches mixing every event type with the cases that must leave the lane
(a resent battle, a reused event id or battle id, retired competitors, strict arenas)."""

from __future__ import annotations

import copy
from datetime import timedelta
from typing import Any

import msgspec
from arbiter.domain.batch_decisions import decide_batch, needed_for
from arbiter.domain.decisions import CompetitorFacts, Facts, decide, facts_needed
from arbiter.domain.events import (
    ArenaConfigured,
    BattleCompleted,
    CompetitorRegistered,
    CompetitorRetired,
    Event,
    content_digest,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from .test_fold_property import NAMES, SOURCES, T0, events


@st.composite
def batches(draw: Any) -> list[Event]:
    """``events()`` with more battles and the twists the fast lane must hand back."""
    out = list(draw(events()))
    for i in range(draw(st.integers(0, 40))):
        kind = draw(st.sampled_from(["battle"] * 5 + ["resend", "reuse_id", "reuse_battle",
                                     "strict", "retire", "register"]))  # fmt: skip
        at = T0 + timedelta(minutes=i)
        battles = [e for e in out if isinstance(e, BattleCompleted)]
        if kind in ("resend", "reuse_id", "reuse_battle") and battles:
            old = draw(st.sampled_from(battles))
            if kind == "resend":
                out.append(old)
            elif kind == "reuse_id":
                out.append(msgspec.structs.replace(old, battle_id=f"x{i}", outcome="tie"))
            else:
                out.append(msgspec.structs.replace(old, event_id=f"x{i}"))
        elif kind == "strict":
            out.append(ArenaConfigured(event_id=f"s{i}", occurred_at=at, arena=draw(
                st.sampled_from(["default", "voice"])), strict=draw(st.booleans())))  # fmt: skip
        elif kind == "retire":
            who = draw(st.sampled_from(NAMES))
            out.append(CompetitorRetired(event_id=f"r{i}", occurred_at=at, competitor=who))
        elif kind == "register":
            who = draw(st.sampled_from(NAMES))
            out.append(CompetitorRegistered(event_id=f"g{i}", occurred_at=at, competitor=who))
        else:
            a, b = draw(st.lists(st.sampled_from([*NAMES, "new1", "new2"]), min_size=2,
                                 max_size=2, unique=True))  # fmt: skip
            out.append(BattleCompleted(
                event_id=f"y{i}", occurred_at=at, arena=draw(st.sampled_from(["default", "voice"])),
                battle_id=f"yb{i}", a=a, b=b, outcome="a", source=draw(SOURCES)))  # fmt: skip
    return draw(st.permutations(out))


@st.composite
def prior_facts(draw: Any) -> Facts:
    """What the log may already hold: known, registered or retired competitors, strict arenas."""
    facts = Facts()
    for name in draw(st.lists(st.sampled_from([*NAMES, "new1"]), unique=True)):
        facts.competitors[name] = CompetitorFacts(draw(st.booleans()), draw(st.booleans()))
    for arena in draw(st.lists(st.sampled_from(["default", "voice"]), unique=True)):
        facts.strict[arena] = draw(st.booleans())
    return facts


@settings(max_examples=300, deadline=None)
@given(evs=batches(), facts=prior_facts())
def test_fast_lane_decides_as_the_general_rules(evs: list[Event], facts: Facts) -> None:
    digests = [content_digest(e) for e in evs]
    general, fast = copy.deepcopy(facts), copy.deepcopy(facts)
    assert decide_batch(evs, digests, fast) == decide(evs, digests, general)
    assert fast == general
    assert needed_for(evs) == facts_needed(evs)
