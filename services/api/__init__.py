"""Arbiter's HTTP API (Litestar): read the read models and the log, publish events.

The package's rooms: :mod:`.app` (the app, its wiring and server), :mod:`.errors`,
:mod:`.parameters`, :mod:`.auth` (the key guard) and :mod:`.privacy` (who sees an experiment),
:mod:`.bus` (NATS), :mod:`.store` (the pool), :mod:`.queries` (SQL per read model),
:mod:`.models` (response bodies), :mod:`.routes` (one module per route group) and
:mod:`.evaluation_jobs`. The names here are what the CLI and the tests start the API with.
"""

from .app import create_app, make_server, serve
from .auth import AuthConfig

__all__ = ["AuthConfig", "create_app", "make_server", "serve"]
