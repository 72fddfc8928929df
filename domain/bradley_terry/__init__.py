"""Bradley-Terry maximum likelihood on the Elo scale, with bootstrap intervals. Pure: no I/O.

The model (DESIGN.md, Ratings): competitor ``i`` beats ``j`` with probability

    P(i beats j) = 1 / (1 + base ** ((r_j - r_i) / scale))

which is the logistic model ``sigmoid(t_i - t_j)`` on the natural logit scale
``t = (r - initial) * ln(base) / scale``. Public LLM leaderboards fit the same model by logistic
regression over battles; here it is fitted from the *pairwise outcome counts* (at most three
cells per unordered pair: ``i`` won, ``j`` won, tie), so the work per iteration depends on the
number of competitors and pairs, never on the number of battles, and the result cannot depend on
the order of the battles.

Conventions, chosen once and applied everywhere in this package:

* **Ties** count as half a win to each side (the Elo seeds score a tie 0.5).
* **Ridge prior.** The fit maximises the log-likelihood minus ``ridge / 2 * sum(t ** 2)`` on the
  natural logit scale, with ``ridge = 1e-6`` by default: the same penalty as scikit-learn's
  ``LogisticRegression(C=1e6)`` that public arena leaderboards have used. It is absolute, not
  per battle. On data where every competitor has both won and lost (more exactly: where the
  unpenalised maximum exists) it moves ratings by far less than 0.01 Elo points. Where the
  unpenalised maximum does not exist, it keeps the fit finite instead of letting it diverge: a
  competitor that never lost (or never won) lands about ``ln(battles / ridge)`` logits from
  the rest, i.e. roughly 2,000 Elo points above (below) them after a handful of battles and
  up to about 4,500 after millions. Read such a rating as "better than everyone, by an unknown
  margin", not as a number; its rank (by intervals) stays honest. A single battle puts its
  winner about 1,000 points above ``initial`` and its loser as far below. A larger ``ridge``
  shrinks such ratings towards ``initial``.
* **Anchor.** Ratings are defined up to a common shift; by default the mean rating is anchored
  at ``initial`` (:mod:`.anchor` pins one competitor at a rating instead, as the public Chatbot
  Arena board does) (public leaderboards anchor either one reference model or the mean; the mean
  needs no choice of model and does not move when one is retired). Competitors that never met,
  directly or through others, have no rating difference defined by the data: each connected
  component of the "has played" graph is centred at ``initial`` on its own (this is exactly
  what the ridge prior's optimum is), so the overall mean is ``initial`` too. A competitor with
  no battles is rated ``initial``.
* **Determinism.** :class:`PairCounts` holds competitors sorted by name and pairs sorted by
  index, so the same battles in any order give the same arrays, and the same arrays give the
  same floats. The bootstrap draws from :class:`numpy.random.Generator` seeded with ``seed``.

Solver: Newton's method on the penalised log-likelihood with a backtracking line search (the
objective is strictly convex, so it converges from any start), with a dense ``n x n`` Hessian:
O(pairs) per iteration to assemble and O(n^3) to solve: a few milliseconds per fit for 100
competitors, about half a second for 1,000 (where 100 bootstrap rounds take about half a
minute); beyond a few thousand competitors a sparse or MM solver would be needed.

The package, one module per step: :mod:`.pair_counts` (battles or stored rows to outcome counts
per pair), :mod:`.solver` (the penalised maximum-likelihood fit), :mod:`.resampling` (bootstrap
samples, percentile intervals, ranks from intervals), :mod:`.result` (the whole leaderboard),
:mod:`.anchor` (one competitor at a given rating) and :mod:`.controlled` (the fit with
covariates of each battle: the public board's style control).
"""

from .anchor import CHATBOT_ARENA_ANCHOR, Anchor, anchor_index, anchor_ratings, parse_anchor
from .controlled import (
    ControlledBattles,
    ControlledResult,
    Covariate,
    controlled_leaderboard,
    fit_controlled,
    normalised_differences,
)
from .pair_counts import OUTCOME_CODES, FloatArray, IntArray, PairCounts
from .point import fit
from .resampling import (
    DEFAULT_LEVEL,
    DEFAULT_ROUNDS,
    Resamples,
    Runner,
    bootstrap,
    bootstrap_samples,
    intervals,
    rank_with_intervals,
    run_in_turn,
)
from .result import BTResult, leaderboard
from .solver import DEFAULT_MAX_ITER, DEFAULT_RIDGE, DEFAULT_TOL

__all__ = [
    "CHATBOT_ARENA_ANCHOR",
    "DEFAULT_LEVEL",
    "DEFAULT_MAX_ITER",
    "DEFAULT_RIDGE",
    "DEFAULT_ROUNDS",
    "DEFAULT_TOL",
    "OUTCOME_CODES",
    "Anchor",
    "BTResult",
    "ControlledBattles",
    "ControlledResult",
    "Covariate",
    "FloatArray",
    "IntArray",
    "PairCounts",
    "Resamples",
    "Runner",
    "anchor_index",
    "anchor_ratings",
    "bootstrap",
    "bootstrap_samples",
    "controlled_leaderboard",
    "fit",
    "fit_controlled",
    "intervals",
    "leaderboard",
    "normalised_differences",
    "parse_anchor",
    "rank_with_intervals",
    "run_in_turn",
]
