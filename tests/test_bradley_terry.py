"""Bradley-Terry from pair counts: agreement with a per-battle logistic regression, invariances,
the bootstrap, the rank rule and degenerate inputs. Pure: no servers."""

from __future__ import annotations

import math

import msgspec
import numpy as np
import pytest
from arbiter.domain import bradley_terry as bt
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

OUTCOMES = ("a", "b", "tie")


# ---------------------------------------------------------------------------------------------
# The reference: plain logistic regression over battles, independent of the module's code path
# ---------------------------------------------------------------------------------------------


def reference_fit(
    a: list[str],
    b: list[str],
    outcomes: list[str],
    *,
    ridge: float = 0.0,
    scale: float = 400.0,
    base: float = 10.0,
    initial: float = 1500.0,
    solver: str = "newton",
) -> dict[str, float]:
    """Per-battle design matrix (+1 for a, -1 for b), y = 1 when a won, a tie as two rows of
    weight 1/2 (one won, one lost); maximise the log-likelihood by a plain Newton iteration on
    those rows, or with scipy's trust-exact (``solver="scipy"``; skips when scipy is missing).

    ``ridge == 0``: the plain MLE, made identifiable by fixing the first competitor at 0.
    ``ridge > 0``: the penalty ``ridge / 2 * |t|^2`` over all competitors. Either way the
    result is centred on its mean and put on the Elo scale."""
    names = sorted(set(a) | set(b))
    col = {name: k for k, name in enumerate(names)}
    rows_x, rows_y, rows_w = [], [], []
    for x, y, o in zip(a, b, outcomes, strict=True):
        v = np.zeros(len(names))
        v[col[x]], v[col[y]] = 1.0, -1.0
        if o == "tie":
            rows_x += [v, v]
            rows_y += [1.0, 0.0]
            rows_w += [0.5, 0.5]
        else:
            rows_x.append(v)
            rows_y.append(1.0 if o == "a" else 0.0)
            rows_w.append(1.0)
    X = np.array(rows_x)
    y = np.array(rows_y)
    w = np.array(rows_w)
    if ridge == 0:
        X = X[:, 1:]  # first competitor pinned at 0

    def nll(t: np.ndarray) -> float:
        z = X @ t
        return float(
            np.sum(w * (y * np.logaddexp(0, -z) + (1 - y) * np.logaddexp(0, z)))
            + 0.5 * ridge * t @ t
        )

    def grad(t: np.ndarray) -> np.ndarray:
        p = 1 / (1 + np.exp(-(X @ t)))
        return X.T @ (w * (p - y)) + ridge * t

    def hess(t: np.ndarray) -> np.ndarray:
        p = 1 / (1 + np.exp(-(X @ t)))
        return (X * (w * p * (1 - p))[:, None]).T @ X + ridge * np.eye(X.shape[1])

    if solver == "scipy":
        optimize = pytest.importorskip("scipy.optimize")
        x = optimize.minimize(
            nll,
            np.zeros(X.shape[1]),
            jac=grad,
            hess=hess,
            method="trust-exact",
            options={"gtol": 1e-11, "maxiter": 1000},
        ).x
    else:  # plain Newton with step halving, on the per-battle rows
        x = np.zeros(X.shape[1])
        for _ in range(500):
            step = -np.linalg.solve(hess(x), grad(x))
            t, f0 = 1.0, nll(x)
            while nll(x + t * step) > f0 + 1e-12 * abs(f0) and t > 1e-10:
                t /= 2
            x = x + t * step
            if np.max(np.abs(t * step)) < 1e-13:
                break
    theta = x if ridge > 0 else np.concatenate([[0.0], x])
    theta = theta - theta.mean()
    return dict(zip(names, initial + theta * scale / math.log(base), strict=True))


def simulate(
    n: int, battles: int, seed: int, *, spread: float = 150.0, tie_rate: float = 0.1
) -> tuple[list[str], list[str], list[str], dict[str, float]]:
    """Seeded battles among ``n`` competitors with hidden ratings (mean 1500)."""
    rng = np.random.default_rng(seed)
    true = rng.normal(0, spread, n)
    true -= true.mean()
    names = [f"c{k:02d}" for k in range(n)]
    ia = rng.integers(0, n, battles)
    ib = (ia + rng.integers(1, n, battles)) % n
    p = 1 / (1 + 10 ** ((true[ib] - true[ia]) / 400))
    tie = rng.random(battles) < tie_rate
    won = rng.random(battles) < p
    outcomes = np.where(tie, "tie", np.where(won, "a", "b")).tolist()
    a = [names[k] for k in ia]
    b = [names[k] for k in ib]
    return a, b, outcomes, {name: 1500 + t for name, t in zip(names, true, strict=True)}


def as_dict(counts: bt.PairCounts, rating: np.ndarray) -> dict[str, float]:
    return dict(zip(counts.competitors, rating.tolist(), strict=True))


# ---------------------------------------------------------------------------------------------
# Agreement with the reference
# ---------------------------------------------------------------------------------------------


def test_agrees_with_per_battle_logistic_regression() -> None:
    a, b, outcomes, _ = simulate(8, 3000, seed=7)
    counts = bt.PairCounts.from_battles(a, b, outcomes)
    got = as_dict(counts, bt.fit(counts))  # default ridge 1e-6: no visible bias
    want = reference_fit(a, b, outcomes)  # unpenalised MLE
    assert got.keys() == want.keys()
    assert max(abs(got[k] - want[k]) for k in got) < 0.01
    assert abs(np.mean(list(got.values())) - 1500) < 1e-9


def test_reference_agrees_with_scipy() -> None:
    a, b, outcomes, _ = simulate(6, 1000, seed=5)
    mine = reference_fit(a, b, outcomes)
    theirs = reference_fit(a, b, outcomes, solver="scipy")
    assert max(abs(mine[k] - theirs[k]) for k in mine) < 1e-4
    counts = bt.PairCounts.from_battles(a, b, outcomes)
    got = as_dict(counts, bt.fit(counts))
    assert max(abs(got[k] - theirs[k]) for k in got) < 0.01


def test_agrees_with_reference_on_other_scales() -> None:
    a, b, outcomes, _ = simulate(5, 800, seed=3, tie_rate=0.3)
    counts = bt.PairCounts.from_battles(a, b, outcomes)
    got = as_dict(counts, bt.fit(counts, scale=1.0, base=math.e, initial=0.0))
    want = reference_fit(a, b, outcomes, scale=1.0, base=math.e, initial=0.0)
    # 0.01 Elo points is 5.8e-5 logits
    assert max(abs(got[k] - want[k]) for k in got) < 5e-5


def test_two_competitors_closed_form() -> None:
    # a wins 3 of 4: p = 3/4, so r_a - r_b = 400 log10(3), centred on 1500
    counts = bt.PairCounts.from_battles(["a", "a", "b", "a"], ["b", "b", "a", "b"], list("aaaa"))
    # the third battle is b vs a won by "a", i.e. b won: 3 wins for a, 1 for b
    assert counts.wins_i.tolist() == [3.0] and counts.wins_j.tolist() == [1.0]
    r = bt.fit(counts, ridge=1e-12)
    half = 200 * math.log10(3)
    assert r == pytest.approx([1500 + half, 1500 - half], abs=1e-6)
    assert bt.fit(counts) == pytest.approx(r, abs=1e-3)  # default ridge: tiny shrinkage


def test_tie_is_half_a_win_each() -> None:
    ties = bt.PairCounts.from_battles(["x", "x"], ["y", "y"], ["tie", "a"])
    halves = bt.PairCounts.from_rows([("x", "y", 1.5, 0.5, 0.0)])
    assert np.allclose(bt.fit(ties), bt.fit(halves), atol=1e-9, rtol=0)


small_battles = st.integers(2, 6).flatmap(
    lambda n: st.lists(
        st.tuples(st.integers(0, n - 1), st.integers(1, n - 1), st.sampled_from(OUTCOMES)),
        min_size=1,
        max_size=30,
    ).map(lambda rows: (n, rows))
)


def unpack(n: int, rows: list[tuple[int, int, str]]) -> tuple[list[str], list[str], list[str]]:
    a = [f"p{x}" for x, _, _ in rows]
    b = [f"p{(x + d) % n}" for x, d, _ in rows]
    return a, b, [o for _, _, o in rows]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(small_battles, st.sampled_from([0.05, 0.5]))
def test_property_agrees_with_penalised_reference(data: tuple, ridge: float) -> None:
    # Random small data is often separable (someone unbeaten): compare the penalised fits.
    n, rows = data
    a, b, outcomes = unpack(n, rows)
    counts = bt.PairCounts.from_battles(a, b, outcomes)
    got = as_dict(counts, bt.fit(counts, ridge=ridge))
    want = reference_fit(a, b, outcomes, ridge=ridge)
    assert max(abs(got[k] - want[k]) for k in got) < 0.01


@settings(max_examples=60, deadline=None)
@given(small_battles, st.randoms(use_true_random=False))
def test_property_permutation_and_side_invariance(data: tuple, random: object) -> None:
    n, rows = data
    a, b, outcomes = unpack(n, rows)
    flipped = {"a": "b", "b": "a", "tie": "tie"}
    battles = list(zip(a, b, outcomes, strict=True))
    random.shuffle(battles)  # type: ignore[attr-defined]
    # swap the sides of every other battle, flipping its outcome
    battles = [(y, x, flipped[o]) if k % 2 else (x, y, o) for k, (x, y, o) in enumerate(battles)]
    other = bt.PairCounts.from_battles(*map(list, zip(*battles, strict=True)))
    counts = bt.PairCounts.from_battles(a, b, outcomes)
    assert other == counts
    assert np.array_equal(bt.fit(other), bt.fit(counts))


# ---------------------------------------------------------------------------------------------
# Order independence, the bootstrap and the ranks
# ---------------------------------------------------------------------------------------------


def test_shuffled_battles_give_identical_results() -> None:
    a, b, outcomes, _ = simulate(12, 5000, seed=11)
    order = np.random.default_rng(5).permutation(len(a))
    sa, sb, so = ([x[k] for k in order] for x in (a, b, outcomes))
    one = bt.leaderboard(bt.PairCounts.from_battles(a, b, outcomes), rounds=20, seed=3)
    two = bt.leaderboard(bt.PairCounts.from_battles(sa, sb, so), rounds=20, seed=3)
    assert one == two


def test_bootstrap_is_reproducible_and_seeded() -> None:
    a, b, outcomes, _ = simulate(10, 2000, seed=2)
    counts = bt.PairCounts.from_battles(a, b, outcomes)
    s1 = bt.bootstrap_samples(counts, rounds=30, seed=42)
    s2 = bt.bootstrap_samples(counts, rounds=30, seed=42)
    s3 = bt.bootstrap_samples(counts, rounds=30, seed=43)
    assert s1.shape == (30, 10)
    assert np.array_equal(s1, s2)
    assert not np.allclose(s1, s3)
    assert np.allclose(s1.mean(axis=1), 1500)  # every resample anchored on the mean
    lo1, hi1 = bt.bootstrap(counts, rounds=30, seed=42)
    assert np.array_equal(lo1, np.percentile(s1, 2.5, axis=0))
    assert np.array_equal(hi1, np.percentile(s1, 97.5, axis=0))


def test_bootstrap_resamples_the_battles() -> None:
    # Each round resamples exactly N battles; the spread shrinks like 1/sqrt(N).
    a, b, outcomes, _ = simulate(6, 500, seed=9)
    small = bt.PairCounts.from_battles(a, b, outcomes)
    big = bt.PairCounts.from_battles(a * 16, b * 16, outcomes * 16)
    width_small = np.subtract(*bt.bootstrap(small, rounds=200, seed=1)[::-1])
    width_big = np.subtract(*bt.bootstrap(big, rounds=200, seed=1)[::-1])
    ratio = float(np.mean(width_small / width_big))
    assert 3 < ratio < 5.5  # about sqrt(16) = 4


def test_intervals_contain_the_point_estimate_and_truth_mostly() -> None:
    a, b, outcomes, true = simulate(15, 20000, seed=4, tie_rate=0.0)
    result = bt.leaderboard(bt.PairCounts.from_battles(a, b, outcomes), rounds=100, seed=0)
    assert result.battles == 20000 and result.rounds == 100 and result.seed == 0
    assert all(
        lo <= r <= hi for r, lo, hi in zip(result.rating, result.lower, result.upper, strict=True)
    )
    covered = sum(
        lo <= true[c] <= hi
        for c, lo, hi in zip(result.competitors, result.lower, result.upper, strict=True)
    )
    assert covered >= 12  # 95 % intervals: nearly all of 15 cover the truth
    assert list(result.rating) == sorted(result.rating, reverse=True)
    assert result.rank[0] == 1
    assert all(1 <= r <= len(result.rank) for r in result.rank)


def test_rank_rule_on_a_hand_made_case() -> None:
    rating = np.array([1600.0, 1550.0, 1500.0, 1400.0, 1300.0])
    lower = np.array([1580.0, 1500.0, 1450.0, 1300.0, 1200.0])
    upper = np.array([1620.0, 1590.0, 1540.0, 1500.0, 1580.0])
    # 0: nobody's lower above 1620 -> 1.  1: 1580 is not above 1590 -> 1.
    # 2: 1580 > 1540 -> 2.  3: 1580 > 1500, 1500 is not strictly above 1500 -> 2.
    # 4: upper 1580 equals the best lower bound, not strictly below it -> 1.
    assert bt.rank_with_intervals(rating, lower, upper).tolist() == [1, 1, 2, 2, 1]
    with pytest.raises(ValueError):
        bt.rank_with_intervals(rating, lower[:2], upper)


def test_result_is_a_serialisable_display_table() -> None:
    a, b, outcomes, _ = simulate(4, 400, seed=1)
    result = bt.leaderboard(bt.PairCounts.from_battles(a, b, outcomes), rounds=10, seed=5)
    back = msgspec.json.decode(msgspec.json.encode(result), type=bt.BTResult)
    assert back == result
    rows = result.rows()
    assert [r[1] for r in rows] == list(result.competitors)
    assert rows[0][2] == max(result.rating)


# ---------------------------------------------------------------------------------------------
# Pair counts
# ---------------------------------------------------------------------------------------------


def test_from_battles_counts_per_pair() -> None:
    counts = bt.PairCounts.from_battles(
        ["y", "x", "x", "y", "z", "x"],
        ["x", "y", "y", "x", "x", "z"],
        ["a", "a", "tie", "b", "tie", None],  # None: awaiting votes, skipped
    )
    assert counts.competitors == ("x", "y", "z")
    assert counts.rows() == [("x", "y", 2.0, 1.0, 1.0), ("x", "z", 0.0, 0.0, 1.0)]
    assert counts.battles == 5
    codes = np.array([1, 0, 2, 0, 2])  # integer outcome codes, same battles without the None
    same = bt.PairCounts.from_battles(
        np.array(["y", "x", "x", "y", "z"]), np.array(["x", "y", "y", "x", "x"]), codes
    )
    assert same == counts


def test_from_rows_round_trip_and_summing() -> None:
    a, b, outcomes, _ = simulate(7, 700, seed=8)
    counts = bt.PairCounts.from_battles(a, b, outcomes)
    assert bt.PairCounts.from_rows(counts.rows()) == counts
    # a pair given twice, once in each order, is summed
    summed = bt.PairCounts.from_rows(
        [("b", "a", 1, 2, 0), ("a", "b", 3, 0, 1), ("c", "a", 0, 0, 0)]
    )
    assert summed.competitors == ("a", "b", "c")
    assert summed.rows() == [("a", "b", 5.0, 1.0, 1.0)]
    assert bt.fit(summed)[2] == 1500.0  # named but never played: initial


def test_pair_counts_are_read_only_and_validated() -> None:
    counts = bt.PairCounts.from_battles(["a"], ["b"], ["a"])
    with pytest.raises(ValueError):
        counts.wins_i[0] = 5
    with pytest.raises(ValueError, match="against itself"):
        bt.PairCounts.from_battles(["a"], ["a"], ["a"])
    with pytest.raises(ValueError, match="unknown outcome"):
        bt.PairCounts.from_battles(["a"], ["b"], ["draw"])
    with pytest.raises(ValueError, match="same length"):
        bt.PairCounts.from_battles(["a", "c"], ["b"], ["a"])
    with pytest.raises(ValueError, match="non-negative"):
        bt.PairCounts.from_rows([("a", "b", -1, 0, 0)])
    with pytest.raises(ValueError):
        bt.PairCounts(("a", "b"), np.array([1]), np.array([0]), *np.ones((3, 1)))  # i > j
    with pytest.raises(ValueError):
        bt.PairCounts(("b", "a"), np.array([0]), np.array([1]), *np.ones((3, 1)))  # unsorted
    for bad in ({"scale": 0}, {"base": 1}, {"ridge": 0}):
        with pytest.raises(ValueError):
            bt.fit(counts, **bad)
    with pytest.raises(ValueError, match="rounds"):
        bt.bootstrap(counts, rounds=0)


# ---------------------------------------------------------------------------------------------
# Degenerate inputs: finite, no exception
# ---------------------------------------------------------------------------------------------


def test_unbeaten_competitor_is_finite_and_first() -> None:
    a, b, outcomes, _ = simulate(5, 500, seed=6)
    # "zz" beats everyone, 3 times each
    extra = [f"c{k:02d}" for k in range(5)] * 3
    counts = bt.PairCounts.from_battles(a + ["zz"] * 15, b + extra, outcomes + ["a"] * 15)
    result = bt.leaderboard(counts, rounds=50, seed=0)
    for field in (result.rating, result.lower, result.upper):
        assert all(math.isfinite(x) for x in field)
    assert result.competitors[0] == "zz" and result.rank[0] == 1
    top, second = result.rating[0], result.rating[1]
    assert 500 < top - second < 3000  # far ahead, held finite by the ridge
    assert np.mean(result.rating) == pytest.approx(1500)
    # a stronger prior pulls it in
    assert bt.fit(counts, ridge=1.0).max() < top


def test_disconnected_groups_are_each_centred() -> None:
    a, b, outcomes, _ = simulate(4, 300, seed=1)
    a2, b2, o2, _ = simulate(3, 300, seed=2)
    g2 = {f"c{k:02d}": f"g{k}" for k in range(3)}
    counts = bt.PairCounts.from_battles(
        a + [g2[x] for x in a2], b + [g2[x] for x in b2], outcomes + o2
    )
    rating = as_dict(counts, bt.fit(counts))
    first = [v for k, v in rating.items() if k.startswith("c")]
    second = [v for k, v in rating.items() if k.startswith("g")]
    assert np.mean(first) == pytest.approx(1500, abs=1e-9)
    assert np.mean(second) == pytest.approx(1500, abs=1e-9)
    # within a group, the same as fitting that group alone
    alone = bt.fit(bt.PairCounts.from_battles(a, b, outcomes))
    assert np.allclose(first, alone, atol=1e-6)
    lo, hi = bt.bootstrap(counts, rounds=20, seed=0)
    assert np.all(np.isfinite(lo)) and np.all(np.isfinite(hi))


def test_single_battle() -> None:
    counts = bt.PairCounts.from_battles(["winner"], ["loser"], ["a"])
    result = bt.leaderboard(counts, rounds=20, seed=0)
    assert result.competitors == ("winner", "loser")
    w, lo = result.rating
    assert math.isfinite(w) and w > 1500 > lo
    assert w - 1500 == pytest.approx(1500 - lo)
    assert result.lower[0] <= w <= result.upper[0]
    tie = bt.fit(bt.PairCounts.from_battles(["x"], ["y"], ["tie"]))
    assert tie.tolist() == [1500.0, 1500.0]


def test_zero_battles() -> None:
    empty = bt.PairCounts.from_battles([], [], [])
    assert empty.competitors == () and empty.battles == 0
    assert bt.fit(empty).shape == (0,)
    result = bt.leaderboard(empty, rounds=5)
    assert result.competitors == () and result.battles == 0
    # named competitors without battles (or only pending ones) sit at initial, zero width
    named = bt.PairCounts.from_battles(["a"], ["b"], [None], competitors=["c"])
    assert named.competitors == ("a", "b", "c") and named.battles == 0
    result = bt.leaderboard(named, rounds=5)
    assert result.rating == result.lower == result.upper == (1500.0, 1500.0, 1500.0)
    assert result.rank == (1, 1, 1)


def test_warm_start_does_not_change_the_optimum() -> None:
    a, b, outcomes, _ = simulate(9, 1500, seed=12)
    counts = bt.PairCounts.from_battles(a, b, outcomes)
    cold = bt.fit(counts)
    warm = bt.fit(counts, start=cold + np.linspace(-300, 300, cold.size))
    assert np.allclose(cold, warm, atol=1e-7, rtol=0)
