"""What a process's first requests would otherwise pay once, paid at start on a daemon thread:
every page template compiled (about 90 ms for all of them) and one small Bradley-Terry board fitted
(numpy's solver and draw paths and the two-thread runner set up), so the first person to open a
page or ask for ``system=bt`` waits no longer than the next one (measured by
benchmarks/web_pages.py: "very first" against "cold"). It never blocks start-up: a request that
arrives before it is done simply compiles or fits as it would have.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

__all__ = ["start_warm_up", "warm_up"]

log = logging.getLogger("arbiter.api.warm_up")

_POOL = [
    (f"w{i:02d}", f"w{j:02d}", 20 + (i * 7 + j) % 5, 20 + (i + j * 3) % 4, (i + j) % 2)
    for i in range(60)
    for j in range(i + 1, 60)
]
"""60 competitors, every pair played at least 40 times (so no resample leaves a pair out and the
rounds take the batched road of a real board): a small board's fit, tens of ms of CPU on the
warm-up thread, that runs every path a real one does."""


def warm_up(template_engine: Any) -> None:
    """Compile every template ``template_engine`` (a Litestar Jinja engine) knows, then fit
    :data:`_POOL` with 40 bootstrap rounds (two chunks: the two-thread runner runs)."""
    from .queries.bt_board import BTOptions, fit_pairs

    try:
        env = template_engine.engine
        for name in env.list_templates():
            env.get_template(name)
        fit_pairs(_POOL, (400.0, 10.0, 1000.0), BTOptions(rounds=40), None)
    except Exception:  # a warm-up is an optimisation: never a reason to fail
        log.warning("warm-up failed", exc_info=True)


def start_warm_up(template_engine: Any) -> threading.Thread:
    thread = threading.Thread(
        target=warm_up, args=(template_engine,), name="arbiter-warm-up", daemon=True
    )
    thread.start()
    return thread
