"""The web pages: HTML rendered on the server, for people who look at results rather than JSON.

URL scheme (fixed; JSON routes own ``/competitors/{id}``, ``/battles/{id}``, ``/experiments/{id}``,
``/stats`` and ``/events``, so every page but the first lives under ``/ui/``)::

    /                                   arenas: competitors, results, last activity per arena
    /ui/arenas/{arena}                  leaderboard (system, category, as_of), live
    /ui/arenas/{arena}/head-to-head     win-fraction and battle-count heatmaps
    /ui/competitors/{id}                rating history, W/L/T, recent battles and games
    /ui/experiments/{id}                an experiment
    /ui/stats                           statistics
    /ui/log  and  /ui/log/{event_id}    the event log and one event
    /ui/battles/{id}, /ui/games/{id}    one battle, one game
    POST /ui/key                        keep an API key in a session cookie (or forget it)
    /ui/static/...                      app.css, app.js (written here; no CDN)

How it is built: Jinja2 templates (:mod:`.templating`) through Litestar's template support; the
pages call the API's query functions in-process on the app's :class:`ReadStore`, so a number on
a page is the number the JSON route answers; charts are SVG drawn on the server
(:mod:`.charts`); the only script (``static/app.js``) sorts tables and applies live leaderboard
updates from ``/leaderboard/stream``. The pages are read routes like the JSON ones (scope
``read``); with keys enforced and public reads off a page without a key answers the key form
(401), which keeps the key in a session cookie that only page ``GET`` routes read
(:mod:`.keys`). The router is :func:`.routes.web_router`.
"""

from __future__ import annotations

__all__: list[str] = []  # the app imports .routes and .templating itself (see services/api/app.py)
