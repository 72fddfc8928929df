"""What a process's first requests would otherwise pay once, paid at start on a daemon thread:
every page template compiled (about 90 ms for all of them) and one tiny Bradley-Terry board fitted
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


def warm_up(template_engine: Any) -> None:
    """Compile every template ``template_engine`` (a Litestar Jinja engine) knows, then fit a
    three-competitor board with two bootstrap rounds."""
    from .queries.bt_board import BTOptions, fit_pairs

    try:
        env = template_engine.engine
        for name in env.list_templates():
            env.get_template(name)
        pairs = [("a", "b", 3, 1, 1), ("a", "c", 1, 2, 0), ("b", "c", 2, 2, 1)]
        fit_pairs(pairs, (400.0, 10.0, 1000.0), BTOptions(rounds=2), None)
    except Exception:  # a warm-up is an optimisation: never a reason to fail
        log.warning("warm-up failed", exc_info=True)


def start_warm_up(template_engine: Any) -> threading.Thread:
    thread = threading.Thread(
        target=warm_up, args=(template_engine,), name="arbiter-warm-up", daemon=True
    )
    thread.start()
    return thread
