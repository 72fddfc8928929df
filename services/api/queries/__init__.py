"""The SQL behind the routes and the assembly of their bodies, one module per read model or route
group: :mod:`.snapshot` (one read-only snapshot per request, shared pieces), :mod:`.leaderboard`
(Elo and Bradley-Terry boards), :mod:`.ratings` (head-to-head, matchmaking, history per day),
:mod:`.summary`, :mod:`.pages` (the results lists' filters and paging), :mod:`.results`
(battles, games) and :mod:`.experiments` (trials, experiment results, stats).

Voids: a voided result is out of every aggregate (ratings, pair counts, metric averages, score
votes, experiment results, stats, summary counts) and stays visible in the lists, marked with
``voided_by`` (the void's event id)."""

# The modules are what this package offers (the routes import one as ``q`` and call
# ``q.leaderboard(...)``): re-exporting their functions here would shadow the modules named
# like them (``leaderboard``, ``summary``).
from . import experiments, leaderboard, pages, ratings, results, snapshot, summary

__all__ = ["experiments", "leaderboard", "pages", "ratings", "results", "snapshot", "summary"]
