"""The long-running processes, and the drivers of a fold.

* :mod:`.ingest`: NATS -> decode -> validate -> append to the log (``arbiter ingest``);
* :mod:`.projector`: follows the log and folds it into the read models (``arbiter project``);
* :mod:`.rebuild`, with :mod:`.rebuild_tables` and :mod:`.rebuild_worker` (started as
  ``python -m arbiter.services.processes.rebuild_worker``): ``arbiter rebuild``;
* :mod:`.audit`: ``arbiter audit verify`` / ``explain``, the log replayed in memory;
* :mod:`.paging`: the one loop the projector, the rebuild and the audit share (pages of the log
  after a position, up to a head, applied to a fold; the collector paused for bulk folding);
* :mod:`.up`: ``arbiter up``, the three services and the embedded servers in one process;
* :mod:`.runtime`: where the servers are (environment, or the embedded ones ``arbiter up``
  owns).

Decided: the settings for bulk work (the collector pause, formerly ``services/bulk.py``) live
in :mod:`.paging`, since only the fold drivers use them. ``services/setup.py`` (bring a
database to the current schema) stays a plain module in :mod:`arbiter.services`: it is no
process, and the CLI, ``arbiter up``, the tests and the benchmarks all call it.

This ``__init__`` imports none of its modules, so that starting the rebuild worker imports only
what it needs; ``__all__`` names the modules.
"""

__all__ = [
    "audit",
    "ingest",
    "paging",
    "projector",
    "rebuild",
    "rebuild_tables",
    "rebuild_worker",
    "runtime",
    "up",
]
