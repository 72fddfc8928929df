"""The public board's conventions, checked against independent fits: the anchor (one competitor
at a rating, every bootstrap round too), a FastChat-style ``compute_mle_elo`` written out here on
the real Chatbot Arena counts, Evalica's published Bradley-Terry scores on LLMFAO, and the
controlled fit (style control) against a plain logistic regression over per-result rows with
the covariate columns. Pure: no servers."""

from __future__ import annotations

import csv
import json
import math
import random
from pathlib import Path

import numpy as np
import pytest
from arbiter.domain import bradley_terry as bt

from .test_bradley_terry import simulate

REALDATA = Path(__file__).resolve().parents[2] / "shared" / "realdata"
ARENA_COUNTS = REALDATA / "chatbotarena_20240814_counts.json"
LLMFAO = REALDATA / "llmfao.csv"


def newton(X: np.ndarray, y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Unpenalised weighted logistic regression without intercept, by plain Newton steps with
    step halving on the dense design matrix (a reference: shares no code with the module)."""

    def nll(b: np.ndarray) -> float:
        z = X @ b
        return float(np.sum(w * (y * np.logaddexp(0, -z) + (1 - y) * np.logaddexp(0, z))))

    beta = np.zeros(X.shape[1])
    for _ in range(200):
        p = 1 / (1 + np.exp(-(X @ beta)))
        grad = X.T @ (w * (p - y))
        hess = (X * (w * p * (1 - p))[:, None]).T @ X
        step = -np.linalg.solve(hess, grad)
        t, f0 = 1.0, nll(beta)
        while nll(beta + t * step) > f0 + 1e-12 * abs(f0) and t > 1e-12:
            t /= 2
        beta = beta + t * step
        if np.max(np.abs(t * step)) < 1e-12:
            break
    return beta


# -- the anchor ---------------------------------------------------------------------------------


def test_parse_anchor() -> None:
    assert bt.parse_anchor("mixtral-8x7b-instruct-v0.1:1114") == bt.CHATBOT_ARENA_ANCHOR
    assert bt.parse_anchor("org:model:-12.5") == ("org:model", -12.5)  # the last colon splits
    for bad in ("m", ":1", "m:", "m:x", "m:nan", "m:inf", "m:1e10", " m:1"):
        with pytest.raises(ValueError, match="anchor"):
            bt.parse_anchor(bad)


def test_anchor_is_a_shift_that_pins_every_round() -> None:
    a, b, outcomes, _ = simulate(6, 600, seed=3)
    counts = bt.PairCounts.from_battles(a, b, outcomes)
    plain = bt.leaderboard(counts, rounds=30, seed=2)
    pinned = bt.leaderboard(counts, rounds=30, seed=2, anchor=("c03", 1114.0))
    assert pinned.anchor == ("c03", 1114.0) and plain.anchor is None
    p, q = (
        dict(zip(plain.competitors, plain.rating, strict=True)),
        dict(zip(pinned.competitors, pinned.rating, strict=True)),
    )
    shift = 1114.0 - p["c03"]
    assert q["c03"] == 1114.0
    assert all(q[c] == pytest.approx(p[c] + shift, abs=1e-9) for c in p)
    k = pinned.competitors.index("c03")
    assert pinned.lower[k] == pinned.upper[k] == 1114.0  # pinned in every bootstrap round
    assert pinned.competitors == plain.competitors  # the order never changes
    with pytest.raises(ValueError, match="no battles"):
        bt.leaderboard(counts, anchor=("nobody", 1.0))


@pytest.mark.skipif(not ARENA_COUNTS.exists(), reason="shared/realdata is absent")
def test_chatbot_arena_counts_reproduce_a_fastchat_style_fit() -> None:
    """The public board's plain Bradley-Terry, written out as FastChat's ``compute_mle_elo``
    does it: per pair a row won by the first side with weight 2 x its wins + ties and one won
    by the second with 2 x its wins + ties (a tie is half a win each), columns +ln 10 / -ln 10,
    no intercept, no penalty; rating = 400 x coefficient + 1000, shifted so that
    mixtral-8x7b-instruct-v0.1 is 1114. Arbiter's pair-count fit must give the same numbers."""
    data = json.loads(ARENA_COUNTS.read_text())
    models, pairs, cells = data["models"], np.array(data["X"]), np.array(data["Y"], dtype=float)
    assert len(models) == 129 and cells.sum() == 1_670_250
    n = len(models)
    X = np.zeros((2 * len(pairs), n))
    rows = np.arange(len(pairs))
    for half in (0, 1):  # the same columns, one row labelled won and one lost
        X[2 * rows + half, pairs[:, 0]] = math.log(10)
        X[2 * rows + half, pairs[:, 1]] = -math.log(10)
    ties = cells[:, 2] + cells[:, 3]
    w = np.empty(2 * len(pairs))
    w[0::2], w[1::2] = 2 * cells[:, 0] + ties, 2 * cells[:, 1] + ties
    y = np.tile([1.0, 0.0], len(pairs))
    beta = np.concatenate([[0.0], newton(X[:, 1:], y, w)])  # first model pinned: identifiable
    reference = 400 * beta + 1000
    reference += 1114 - reference[models.index("mixtral-8x7b-instruct-v0.1")]

    counts = bt.PairCounts.from_rows(
        (models[i], models[j], wi, wj, t1 + t2)
        for (i, j), (wi, wj, t1, t2) in zip(pairs, cells, strict=True)
    )
    board = bt.leaderboard(
        counts, rounds=20, seed=0, initial=1000.0, anchor=bt.CHATBOT_ARENA_ANCHOR
    )
    got = dict(zip(board.competitors, board.rating, strict=True))
    diff = np.array([got[m] - reference[k] for k, m in enumerate(models)])
    assert np.max(np.abs(diff)) < 0.01  # Elo points: the ridge's whole effect
    assert got["mixtral-8x7b-instruct-v0.1"] == 1114.0
    # leaderbot's own model ranks the same model first (its table is a rank reference only).
    assert board.competitors[0] == "chatgpt-4o-latest" and board.rank[0] == 1


@pytest.mark.skipif(not LLMFAO.exists(), reason="shared/realdata is absent")
def test_llmfao_matches_evalicas_published_bradley_terry() -> None:
    """Evalica's published ``bradley_terry`` scores (strengths summing to 1, ties half a win)
    on the LLMFAO judgments: exp of Arbiter's logit ratings, normalised, are the same."""
    rows = list(csv.DictReader(LLMFAO.open(newline="")))
    side = {"left": "a", "right": "b", "tie": "tie"}
    counts = bt.PairCounts.from_battles(
        [r["left"] for r in rows], [r["right"] for r in rows], [side[r["winner"]] for r in rows]
    )
    golden = {
        r["item"]: float(r["score"])
        for r in csv.DictReader((REALDATA / "llmfao-golden.csv").open(newline=""))
        if r["algorithm"] == "bradley_terry"
    }
    logit = bt.fit(counts, scale=1.0, base=math.e, initial=0.0)
    strength = np.exp(logit) / np.exp(logit).sum()
    assert set(counts.competitors) == set(golden) and len(golden) == 59
    for name, s in zip(counts.competitors, strength, strict=True):
        assert s == pytest.approx(golden[name], rel=1e-6), name


# -- controlled Bradley-Terry (style control) ---------------------------------------------------


def styled_battles(
    n: int, battles: int, seed: int, effect: float
) -> tuple[list[tuple[str, str, float, float, float, list[float], list[float]]], np.ndarray]:
    """Battles where the stronger competitor also writes longer answers (a confounder), and
    length itself moves the outcome by ``effect`` logits per standard deviation; some battles
    carry several results (votes), some a tie."""
    rng = np.random.default_rng(seed)
    skill = rng.normal(0, 0.6, n)
    rows = []
    for _ in range(battles):
        i, j = rng.choice(n, 2, replace=False)
        la, lb = (max(0.0, rng.normal(400 + 150 * skill[k], 120)) for k in (i, j))
        ma, mb = (float(rng.integers(0, 6)) for _ in range(2))
        z = skill[i] - skill[j] + effect * ((la - lb) / (la + lb + 1)) / 0.2
        p = 1 / (1 + math.exp(-z))
        results = rng.integers(1, 4)
        wins_a = float(rng.binomial(results, p))
        tie = float(rng.random() < 0.1)
        rows.append((f"m{i}", f"m{j}", wins_a, results - wins_a, tie, [la, ma], [lb, mb]))
    return rows, skill


def reference_controlled(
    rows: list[tuple[str, str, float, float, float, list[float], list[float]]],
) -> tuple[dict[str, float], np.ndarray]:
    """One design row per result (a tie: two rows of weight 1/2, one won by each side): +1 / -1
    for the sides, then the covariates, each ``(a - b) / (a + b + 1)`` standardised over those
    rows; unpenalised, first competitor pinned. Ratings in logits, centred on their mean."""
    names = sorted({r[0] for r in rows} | {r[1] for r in rows})
    col = {name: k for k, name in enumerate(names)}
    ind, cov, y, w = [], [], [], []
    for a, b, wa, wb, t, va, vb in rows:
        v = np.zeros(len(names))
        v[col[a]], v[col[b]] = 1.0, -1.0
        d = [(x - z) / (x + z + 1) for x, z in zip(va, vb, strict=True)]
        for label, count, weight in ((1.0, wa, 1.0), (0.0, wb, 1.0), (1.0, t, 0.5), (0.0, t, 0.5)):
            for _ in range(int(count)):
                ind.append(v)
                cov.append(d)
                y.append(label)
                w.append(weight)
    C = np.array(cov)
    W = np.array(w)
    mean = (W @ C) / W.sum()
    std = np.sqrt((W @ (C - mean) ** 2) / W.sum())
    X = np.hstack([np.array(ind)[:, 1:], (C - mean) / std])
    beta = newton(X, np.array(y), W)
    theta = np.concatenate([[0.0], beta[: len(names) - 1]])
    theta -= theta.mean()
    return dict(zip(names, theta, strict=True)), beta[len(names) - 1 :]


def test_controlled_fit_agrees_with_logistic_regression_with_covariate_columns() -> None:
    rows, _ = styled_battles(7, 700, seed=11, effect=0.4)
    want, coef = reference_controlled(rows)
    battles = bt.ControlledBattles.from_rows(rows, ("length", "bold"))
    rating, got_coef = bt.fit_controlled(battles, scale=1.0, base=math.e, initial=0.0)
    got = dict(zip(battles.competitors, rating, strict=True))
    assert got_coef == pytest.approx(coef, abs=1e-5)
    assert all(got[c] == pytest.approx(want[c], abs=1e-5) for c in want)
    # The leaderboard ranks by these ratings and reports the same coefficients.
    result = bt.controlled_leaderboard(battles, rounds=10, seed=1, scale=1.0, base=math.e,
                                       initial=0.0)  # fmt: skip
    assert [c.metric for c in result.covariates] == ["length", "bold"]
    assert [c.coefficient for c in result.covariates] == pytest.approx(list(got_coef))
    assert list(result.board.competitors) == sorted(got, key=lambda c: -got[c])
    for c in result.covariates:
        assert c.lower <= c.upper


def test_controlling_for_a_confounder_recovers_the_skills() -> None:
    """The stronger competitors also write longer answers and length wins votes on its own:
    the uncontrolled fit inflates the gaps, the controlled one recovers the skills and the
    length effect."""
    rows, skill = styled_battles(6, 6000, seed=5, effect=0.5)
    battles = bt.ControlledBattles.from_rows(rows, ("length", "bold"))
    rating, coef = bt.fit_controlled(battles, scale=1.0, base=math.e, initial=0.0)
    truth = skill - skill.mean()
    controlled = np.array([rating[battles.competitors.index(f"m{k}")] for k in range(6)])
    counts = bt.PairCounts.from_rows(r[:5] for r in rows)
    plain = bt.fit(counts, scale=1.0, base=math.e, initial=0.0)
    uncontrolled = np.array([plain[counts.competitors.index(f"m{k}")] for k in range(6)])
    err_c = np.abs(controlled - truth).max()
    err_u = np.abs(uncontrolled - truth).max()
    assert err_c < 0.1 < err_u
    assert coef[0] > 0.3 and abs(coef[1]) < 0.1  # length matters, the bold count does not


def test_controlled_fit_ignores_row_order_and_refuses_a_constant_metric() -> None:
    rows, _ = styled_battles(5, 300, seed=2, effect=0.3)
    one = bt.controlled_leaderboard(bt.ControlledBattles.from_rows(rows, ("l", "m")), rounds=8)
    shuffled = list(rows)
    random.Random(4).shuffle(shuffled)
    two = bt.controlled_leaderboard(bt.ControlledBattles.from_rows(shuffled, ("l", "m")), rounds=8)
    assert one == two  # every float, the bootstrap included
    flat = [(a, b, wa, wb, t, [va[0], 2.0], [vb[0], 2.0]) for a, b, wa, wb, t, va, vb in rows]
    with pytest.raises(ValueError, match="'m' has the same normalised difference"):
        bt.fit_controlled(bt.ControlledBattles.from_rows(flat, ("l", "m")))
