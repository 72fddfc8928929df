"""An embedded PostgreSQL that is a hot standby of another: a streaming replica made with the
wheel's own ``pg_basebackup``, for ``ARBITER_READ_DATABASE_URL`` (the tests start one beside
their primary; an operator can start one beside ``arbiter up``'s).

``pg_basebackup -R`` copies the primary's data directory over the replication protocol and
writes ``standby.signal`` and ``primary_conninfo``, so the copy starts as a read-only standby
that streams and replays the primary's WAL (``-X stream``: the WAL written during the copy
comes along, so the copy is consistent on its own). The primary needs nothing that the embedded
server lacks: ``wal_level=replica``, ``max_wal_senders`` and the ``local replication`` trust
line are PostgreSQL's defaults for a cluster made by ``initdb``, and the standby connects over
the primary's Unix socket. Everything else (launching, stopping, the root case) is
:class:`~.postgres.EmbeddedPostgres`'s.
"""

from __future__ import annotations

from pathlib import Path

from .pg_install import pg_bin_dir
from .postgres import PG_SUPERUSER, EmbeddedPostgres

__all__ = ["EmbeddedStandby"]


class EmbeddedStandby(EmbeddedPostgres):
    """A hot standby of the server at ``primary_url`` on ``data_dir`` (copied on first
    ``start()``, reused after)."""

    def __init__(self, data_dir: Path, primary_url: str) -> None:
        super().__init__(data_dir)
        self.primary_url = primary_url

    def _ensure_initdb(self) -> None:
        """The base backup instead of ``initdb``, into a side directory renamed into place once
        complete (as ``initdb`` is), so a copy cut short is never taken for a standby."""
        if not (self.data_dir / "PG_VERSION").exists():
            self._base_backup()
        # The primary's socket lock, copied when its socket lives in its PGDATA: it names the
        # primary's live pid, so PostgreSQL would refuse to start over it. Ours, if any, goes
        # with our postmaster.pid (a leftover standby is stopped next, by ``start``).
        if not (self.data_dir / "postmaster.pid").exists():
            for copied in self.data_dir.glob(".s.PGSQL.*"):
                copied.unlink()

    def _base_backup(self) -> None:
        staging = self._staging(".basebackup")
        args = [
            str(pg_bin_dir() / "pg_basebackup"),
            "--pgdata", str(staging),
            "--dbname", self.primary_url,
            "--username", PG_SUPERUSER,
            "--write-recovery-conf",
            "--wal-method=stream",
            "--checkpoint=fast",
            "--no-password",
        ]  # fmt: skip
        self._make_into(args, staging, "pg_basebackup", 600)

    @staticmethod
    def _ensure_database(admin_url: str) -> None:
        """Nothing: a standby is read-only; its databases are the primary's."""
