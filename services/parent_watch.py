"""A helper process that exits with its parent: for the pools of processes the API starts
(:func:`arbiter.services.api.queries.bt_fits.refit_process`).

Why a module of its own, outside the API's package: a pool's initializer is sent to its process
by name, and importing it from the API's package would load Litestar and every route there.
Why at all: a pool's process outlives a parent killed with SIGKILL, blocked on its queue
forever (seen); an orphan is adopted by another process, so a changed parent id says the
parent is gone, on any POSIX system.
"""

from __future__ import annotations

import os
import signal
import threading
import time

__all__ = ["POLL_S", "exit_with"]

POLL_S = 1.0


def exit_with(parent: int) -> None:
    """In the helper process: exit once ``parent`` is gone (checked every :data:`POLL_S`), and
    ignore Ctrl-C, which reaches the whole process group: the parent stops its helpers itself
    (at its exit, or by this watch), where a KeyboardInterrupt would only print a traceback."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(POLL_S)
        os._exit(0)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()
