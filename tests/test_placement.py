"""Registry status, placement matchmaking (seed 003) and the most informative pair. Pure."""

from __future__ import annotations

import itertools
import statistics

import pytest
from arbiter.domain.placement import (
    PLACEMENT_GAMES,
    game_result,
    most_informative_pair,
    next_opponent,
    placement_target,
    registry_status,
)

# 21 opponents m00..m20 rated 1000, 1100, ..., 3000: the median is m10 at 2000.
LADDER = {f"m{i:02d}": 1000.0 + 100 * i for i in range(21)}


@pytest.mark.parametrize(
    ("results", "retired", "status"),
    [
        (0, False, "untested"),
        (1, False, "testing"),
        (9, False, "testing"),
        (10, False, "ranked"),
        (250, False, "ranked"),
        (0, True, "retired"),
        (5, True, "retired"),
        (10, True, "retired"),
    ],
)
def test_registry_status(results: int, retired: bool, status: str) -> None:
    assert registry_status(results, retired) == status


def test_registry_status_boundary_is_the_placement_length() -> None:
    assert PLACEMENT_GAMES == 10
    assert registry_status(PLACEMENT_GAMES - 1, False) == "testing"
    assert registry_status(PLACEMENT_GAMES, False) == "ranked"
    with pytest.raises(ValueError):
        registry_status(-1, False)


def test_new_competitor_starts_at_the_median() -> None:
    proposal = next_opponent("new", LADDER, [])
    assert proposal is not None
    assert proposal.opponent == "m10"
    assert proposal.target_rating == statistics.median(LADDER.values())
    assert proposal.placement_game == 1
    assert proposal.competitor_rating is None
    assert "median" in proposal.reason


def test_median_ignores_the_competitor_itself_and_excluded_ones() -> None:
    ratings = {**LADDER, "new": 9999.0}
    retired = {"m00", "m01"}  # without them the median moves up one rung: 2100 (m11)
    proposal = next_opponent("new", ratings, [], exclude=retired)
    assert proposal is not None
    assert proposal.opponent == "m11"
    assert proposal.target_rating == pytest.approx(2100.0)
    assert proposal.competitor_rating == 9999.0
    assert proposal.win_probability is not None and proposal.win_probability > 0.99


def test_median_of_an_even_pool_picks_the_nearest_deterministically() -> None:
    ratings = {"a": 1400.0, "b": 1450.0, "c": 1550.0, "d": 1600.0}
    proposal = next_opponent("new", ratings, [])
    assert proposal is not None
    assert proposal.target_rating == 1500.0
    assert proposal.opponent == "b"  # b and c are 50 away: the lower rating wins the tie
    tied = next_opponent("new", {"y": 1450.0, "x": 1450.0, "z": 1550.0}, [])
    assert tied is not None and tied.opponent == "x"  # equal ratings: the smaller id


def test_win_moves_up_loss_moves_down() -> None:
    first = next_opponent("new", LADDER, [])
    assert first is not None
    up = next_opponent("new", LADDER, [(first.opponent, 1.0)])
    down = next_opponent("new", LADDER, [(first.opponent, 0.0)])
    assert up is not None and down is not None
    assert up.opponent_rating > first.opponent_rating
    assert down.opponent_rating < first.opponent_rating
    assert up.target_rating is not None and first.target_rating is not None
    assert up.target_rating > first.target_rating
    assert "above m10" in up.reason and "below m10" in down.reason


def test_tie_keeps_the_level() -> None:
    first = next_opponent("new", LADDER, [])
    assert first is not None
    again = next_opponent("new", LADDER, [(first.opponent, 0.5)])
    assert again is not None
    assert again.target_rating == first.target_rating
    assert again.opponent != first.opponent  # m10 is taken: a neighbour at the same level
    assert abs(again.opponent_rating - first.opponent_rating) == 100.0


def test_steps_halve_like_a_binary_search() -> None:
    ladder = [float(i) for i in range(61)]  # positions 0..60: the median is 30, first step 15.25
    positions = [placement_target(ladder, [("x", 1.0)] * k)[1] for k in range(7)]
    steps = [b - a for a, b in itertools.pairwise(positions)]
    assert positions[0] == 30.0
    assert steps[:4] == [15.25, 7.625, 3.8125, 1.90625]
    assert steps[4] == 1.0  # never below one rung
    assert round(positions[5]) == 60  # five straight wins: the sixth game is against the top


def test_walk_follows_results_over_a_whole_placement() -> None:
    results: list[tuple[str, float]] = []
    previous = None
    outcomes = [1.0, 1.0, 0.0, 1.0, 0.0, 0.0, 1.0, 0.5, 1.0, 0.0]
    for score in outcomes:
        proposal = next_opponent("new", LADDER, results)
        assert proposal is not None
        side = set(LADDER)
        if previous is not None:
            last_score = results[-1][1]
            if last_score == 1.0:
                assert proposal.opponent_rating > previous.opponent_rating
                side = {c for c, r in LADDER.items() if r > previous.opponent_rating}
            elif last_score == 0.0:
                assert proposal.opponent_rating < previous.opponent_rating
                side = {c for c, r in LADDER.items() if r < previous.opponent_rating}
        met = {o for o, _ in results}
        if proposal.opponent in met:  # a rematch only once that side has nobody new left
            assert side <= met
        results.append((proposal.opponent, score))
        previous = proposal
    assert len({o for o, _ in results}) >= PLACEMENT_GAMES - 1
    extra = next_opponent("new", LADDER, results)
    assert extra is not None and extra.placement_game == 11 and "over" in extra.reason


def test_no_repeat_while_others_remain() -> None:
    ratings = {"a": 1400.0, "b": 1500.0, "c": 1600.0}
    results: list[tuple[str, float]] = []
    for _ in range(3):
        proposal = next_opponent("new", ratings, results)
        assert proposal is not None
        assert proposal.opponent not in {o for o, _ in results}
        results.append((proposal.opponent, 0.5))
    # Everyone met once: repeats begin, among the least met.
    fourth = next_opponent("new", ratings, results)
    assert fourth is not None and "met least (1x)" in fourth.reason


def test_win_against_the_top_falls_back_to_the_nearest() -> None:
    ratings = {"a": 1400.0, "b": 1500.0, "c": 1600.0}
    proposal = next_opponent("new", ratings, [("c", 1.0)])
    assert proposal is not None and proposal.opponent in {"a", "b"}  # nobody above c is left


def test_deterministic() -> None:
    results = [("m10", 1.0), ("m15", 0.0)]
    assert next_opponent("new", LADDER, results) == next_opponent("new", dict(LADDER), results)


def test_empty_pools() -> None:
    assert next_opponent("new", {}, []) is None
    assert next_opponent("new", {"new": 1500.0}, []) is None
    assert next_opponent("new", {"a": 1500.0}, [], exclude={"a"}) is None
    only = next_opponent("new", {"a": 1500.0}, [])
    assert only is not None and only.opponent == "a"
    assert most_informative_pair({}) is None
    assert most_informative_pair({"a": 1500.0}) is None
    assert most_informative_pair({"a": 1500.0, "b": 1500.0}, exclude={"b"}) is None


def test_bad_scores_are_refused() -> None:
    with pytest.raises(ValueError):
        next_opponent("new", LADDER, [("m10", 2.0)])


def test_pair_prefers_close_over_lopsided() -> None:
    ratings = {"close1": 1500.0, "close2": 1520.0, "low": 700.0}
    proposal = most_informative_pair(ratings, games={})
    assert proposal is not None
    assert {proposal.competitor, proposal.opponent} == {"close1", "close2"}
    assert proposal.win_probability == pytest.approx(1 / (1 + 10 ** (20 / 400)))


def test_pair_prefers_little_played_over_well_played() -> None:
    ratings = {"vet1": 1500.0, "vet2": 1500.0, "new1": 1600.0, "new2": 1610.0}
    games = {"vet1": 500, "vet2": 500, "new1": 1, "new2": 0}
    proposal = most_informative_pair(ratings, games=games)
    assert proposal is not None
    assert (proposal.competitor, proposal.opponent) == ("new1", "new2")
    assert proposal.information is not None and proposal.information > 0
    assert "new1" in proposal.reason and "Elo²" in proposal.reason


def test_pair_close_and_new_beats_both_lopsided_and_well_played() -> None:
    ratings = {"a": 1500.0, "b": 1510.0, "vet1": 1500.0, "vet2": 1505.0, "top": 2400.0}
    games = {"a": 0, "b": 0, "vet1": 400, "vet2": 400, "top": 0}
    proposal = most_informative_pair(ratings, games=games)
    assert proposal is not None and (proposal.competitor, proposal.opponent) == ("a", "b")


def test_pair_counts_weigh_games_by_their_information() -> None:
    # x and y have each played 50 games, but x's were foregone wins over a much weaker z,
    # which taught little: x stays uncertain, so a game involving x is preferred to one with y.
    ratings = {"x": 1500.0, "y": 1500.0, "w": 1500.0, "z": 500.0}
    counts = {("x", "z"): 50, ("y", "w"): 50}
    proposal = most_informative_pair(ratings, pair_counts=counts)
    assert proposal is not None
    assert "x" in {proposal.competitor, proposal.opponent}
    # Counted as plain games played, x and y would look equally well known.
    plain = most_informative_pair(ratings, games={"x": 50, "y": 50, "w": 50, "z": 50})
    assert plain is not None and (plain.competitor, plain.opponent) == ("w", "x")


def test_pair_ties_are_deterministic() -> None:
    ratings = {"d": 1500.0, "b": 1500.0, "c": 1500.0, "a": 1500.0}
    proposal = most_informative_pair(ratings)
    assert proposal is not None and (proposal.competitor, proposal.opponent) == ("a", "b")
    assert proposal.win_probability == 0.5


def test_pair_scales_to_a_few_hundred_competitors() -> None:
    ratings = {f"c{i:03d}": 1000.0 + 3 * i for i in range(300)}
    games = {cid: (0 if cid in {"c150", "c151"} else 200) for cid in ratings}
    proposal = most_informative_pair(ratings, games=games)
    assert proposal is not None and (proposal.competitor, proposal.opponent) == ("c150", "c151")


@pytest.mark.parametrize(
    ("players", "ranks", "result"),
    [
        (["n", "x"], [1, 2], ("x", 1.0)),
        (["x", "n"], [1, 2], ("x", 0.0)),
        (["n", "x"], [1, 1], ("x", 0.5)),
        (["a", "n", "b"], [1, 2, 3], ("a", 0.5)),  # equally near: the better-ranked
        (["n", "a", "b"], [1, 2, 3], ("a", 1.0)),  # the winner against the runner-up
        (["a", "b", "n"], [1, 2, 3], ("b", 0.0)),  # the last against the one just above
        (["a", "b", "n", "c"], [1, 1, 1, 4], ("a", 2.0 / 3.0)),
    ],
)
def test_game_result_by_ranks(
    players: list[str], ranks: list[int], result: tuple[str, float]
) -> None:
    opponent, score = game_result("n", players, ranks)
    assert opponent == result[0] and score == pytest.approx(result[1])


def test_game_result_refuses_a_game_without_the_competitor() -> None:
    with pytest.raises(ValueError):
        game_result("n", ["a", "b"], [1, 2])
    with pytest.raises(ValueError):
        game_result("n", ["n"], [1])
