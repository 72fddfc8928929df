"""The API's routes, one module per route group (a Litestar controller each): :mod:`.health`,
:mod:`.leaderboard` (and its live stream), :mod:`.competitors`, :mod:`.matchups` (head-to-head,
matchmaking), :mod:`.events`, :mod:`.results` (battles, games, summary), :mod:`.experiments`
(trials, results, stats), :mod:`.evaluations` and :mod:`.admin`. The app
(:mod:`arbiter.services.api.app`) imports them; they never import the app."""

from .admin import AdminController
from .competitors import CompetitorController
from .evaluations import EvaluationController, evaluation_controller
from .events import EventController
from .experiments import ExperimentController, StatsController
from .health import HealthController
from .leaderboard import LeaderboardController, LeaderboardStreamController
from .matchups import HeadToHeadController, MatchmakingController
from .results import BattleController, GameController, SummaryController

__all__ = [
    "AdminController",
    "BattleController",
    "CompetitorController",
    "EvaluationController",
    "EventController",
    "ExperimentController",
    "GameController",
    "HeadToHeadController",
    "HealthController",
    "LeaderboardController",
    "LeaderboardStreamController",
    "MatchmakingController",
    "StatsController",
    "SummaryController",
    "evaluation_controller",
]
