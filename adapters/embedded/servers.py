"""Both embedded servers under one home: what ``arbiter up`` and the test fixtures start.

Started and stopped in a fixed order (NATS first on the way down, so consumers stop receiving
before the log goes away), with nothing left running when either fails to start.
"""

from __future__ import annotations

from pathlib import Path

from .nats import EmbeddedNats
from .postgres import EmbeddedPostgres
from .process import Started

__all__ = ["EmbeddedServers"]


class EmbeddedServers(Started):
    """PostgreSQL and nats-server under one home (``home/pg``, ``home/nats``): ``arbiter up``'s
    default and the test fixtures' backend."""

    def __init__(self, home: Path, nats_port: int | None = None) -> None:
        self.home = Path(home).expanduser().absolute()
        self.postgres = EmbeddedPostgres(self.home / "pg")
        self.nats = EmbeddedNats(self.home / "nats", port=nats_port)

    def start(self) -> tuple[str, str]:
        """Start both; return ``(database_url, nats_url)``. On failure nothing is left running."""
        self.home.mkdir(parents=True, exist_ok=True)
        try:
            nats_url = self.nats.start()
            database_url = self.postgres.start()
        except BaseException:
            self.stop()
            raise
        return database_url, nats_url

    def stop(self, timeout: float | None = None) -> None:
        """Stop both (NATS first: consumers stop receiving before the log goes away).
        ``timeout`` bounds each server's graceful stop before it is killed (``arbiter up``
        must be gone within seconds of Ctrl-C); unset, each waits as long as it usually needs."""
        bound: dict[str, float] = {} if timeout is None else {"timeout": timeout}
        try:
            self.nats.stop(**bound)
        finally:
            self.postgres.stop(**bound)
