"""The bootstrap of a Bradley-Terry board on two threads: a :data:`~arbiter.domain.bradley_terry.
Runner` for :class:`~arbiter.domain.bradley_terry.Resamples` (the domain is pure and runs no
thread itself).

Why: on a cold board (100 competitors, 100,000 battles, 100 rounds) the multinomial draws are
about a third of the CPU and must stay sequential (one generator, so a seed gives the same
draws), while numpy draws and fits without the GIL most of the time. So one thread fits the point
estimate while the other draws, then both take chunks in turn (drawing under a lock, in chunk
order) and fit what they drew: the wall time of a cold board falls by about 40% when the second
core is free. The floats are the same as :func:`~arbiter.domain.bradley_terry.run_in_turn`'s
(tests/test_bt_rounds.py).
"""

from __future__ import annotations

import os
import threading

from arbiter.domain import bradley_terry as bt
from arbiter.domain.bradley_terry.pair_counts import FloatArray

__all__ = ["on_two_threads"]


def on_two_threads(work: bt.Resamples) -> None:
    """Run ``work``'s steps on this thread and one more (in turn when there is one chunk or
    one core). An error in either thread is raised here."""
    if work.chunks < 2 or (os.cpu_count() or 1) < 2:
        bt.run_in_turn(work)
        return
    lock = threading.Lock()
    taken = [0]  # chunks drawn so far
    ready = threading.Event()  # the point is fitted (or failed)
    point_ok = [False]
    failed: list[BaseException] = []

    def take() -> tuple[int, FloatArray] | None:
        with lock:
            k = taken[0]
            if k == work.chunks or failed:
                return None
            taken[0] = k + 1
            return k, work.draw(k)

    def loop() -> None:
        while (item := take()) is not None:
            ready.wait()
            if not point_ok[0]:
                return  # the point fit failed: its error is raised by the caller's thread
            work.fit(*item)

    def helper() -> None:
        try:
            loop()
        except BaseException as exc:  # raised in the caller's thread
            failed.append(exc)

    other = threading.Thread(target=helper, name="bt-bootstrap", daemon=True)
    other.start()
    try:
        work.fit_point()
        point_ok[0] = True
    finally:
        ready.set()
    try:
        loop()
    finally:
        other.join()
    if failed:
        raise failed[0]
