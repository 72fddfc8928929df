"""Projector pacing (``services/processes/pacing.py``): when a live projector commits.

The schedule is a pure function, checked exhaustively; then a real projector on a real
PostgreSQL, with a tick of an hour so that a pause cannot pass unnoticed: an event after a quiet
spell is folded at once, a second one waits for the tick, a backlog is folded without pausing,
and stopping does not wait for the tick.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest
from arbiter.adapters.eventstore import EventLog
from arbiter.projections import PROJECTIONS
from arbiter.services.cli import app as cli_app
from arbiter.services.processes.pacing import (
    DEFAULT_TICK_MS,
    TICK_ENV,
    pause,
    tick_from_env,
)
from arbiter.services.processes.projector import Projector, _Listener
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from .api_events import battle

times = st.floats(min_value=0, max_value=1e6, allow_nan=False)
ticks = st.floats(min_value=0.001, max_value=60, allow_nan=False)


@given(now=times, ago=st.floats(min_value=0, max_value=120), tick=ticks)
def test_the_pause_ends_on_the_shared_tick(now: float, ago: float, tick: float) -> None:
    last = now - ago
    wait = pause(now, last, tick, backlog=False)
    if now - last >= tick:  # a quiet spell: at once
        assert wait == 0.0
        return
    assert 0 < wait <= tick
    # The wait ends on a multiple of the tick, the same instant whoever committed when.
    end = (now + wait) / tick
    assert math.isclose(end, round(end), abs_tol=1e-9 * max(1.0, end))
    other = pause(now, now - (now - last) / 2, tick, backlog=False)
    assert other == wait


@given(now=times, ago=st.floats(min_value=0, max_value=120), tick=ticks)
def test_no_pause_without_pacing_a_backlog_or_a_first_commit(
    now: float, ago: float, tick: float
) -> None:
    assert pause(now, now - ago, 0.0, backlog=False) == 0.0
    assert pause(now, now - ago, tick, backlog=True) == 0.0
    assert pause(now, None, tick, backlog=False) == 0.0


def test_the_tick_from_the_environment() -> None:
    assert tick_from_env({}) == DEFAULT_TICK_MS / 1000
    assert tick_from_env({TICK_ENV: " "}) == DEFAULT_TICK_MS / 1000
    assert tick_from_env({TICK_ENV: "0"}) == 0.0
    assert tick_from_env({TICK_ENV: "250"}) == 0.25
    for bad in ("1.5", "abc", "-1", "60001", "1e3"):
        with pytest.raises(ValueError, match=TICK_ENV):
            tick_from_env({TICK_ENV: bad})


def _position(projector: Projector) -> int:
    """The committed position, read on a connection of its own (not the projector's, which may
    be inside its transaction)."""
    with psycopg.connect(projector.database_url) as conn:
        row = conn.execute("SELECT position FROM arbiter_ratings.tracking").fetchone()
    return int(row[0]) if row else 0


def _until(condition: object, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return True
        time.sleep(0.02)
    return False


@contextmanager
def _following(database_url: str, log: EventLog) -> Iterator[Projector]:
    """A live ratings projector (batches of 2, a tick of an hour) on a thread; stopping it must
    not wait for the tick."""
    if 3600 - time.monotonic() % 3600 < 30:  # the hour's tick is not to fall within the test
        time.sleep(3600 - time.monotonic() % 3600 + 1)
    projector = Projector(
        database_url, PROJECTIONS["ratings"], event_log=log, batch_size=2, tick=3600.0
    )
    stop = threading.Event()
    thread = threading.Thread(target=projector.run, args=(stop,), daemon=True)
    thread.start()
    try:
        yield projector
    finally:
        started = time.monotonic()
        stop.set()
        thread.join(10)
    assert not thread.is_alive(), "stopping waited for the tick"
    assert time.monotonic() - started < 5


def test_a_live_projector_commits_at_once_then_on_the_tick(database_url: str) -> None:
    log = EventLog(database_url)
    with _following(database_url, log) as projector:
        # After a quiet spell (nothing committed yet): folded at once, not at the hour.
        assert not log.append([battle("q1", "a", "b", at=0)]).rejected
        assert _until(lambda: _position(projector) == 1, 10), "the first event waited"
        # A second one right after: paced, it waits for the tick (an hour away, at most).
        assert not log.append([battle("q2", "a", "b", at=1)]).rejected
        time.sleep(1.5)
        assert _position(projector) == 1, "the second event was not paced"


def test_a_backlog_is_folded_without_pauses(database_url: str) -> None:
    log = EventLog(database_url)
    assert not log.append([battle(f"b{i}", "a", "b", at=i) for i in range(7)]).rejected
    with _following(database_url, log) as projector:
        # Batches of 2, 2, 2 (each full: more to come) and 1: all folded, no hour's pause.
        assert _until(lambda: _position(projector) == 7, 15), "a backlog was paced"


def test_the_listener_reads_every_waiting_notification(database_url: str) -> None:
    """What a paced projector calls after each batch that folded something: every notification
    already received is read, not one (a steady stream would otherwise pile them up)."""
    listener = _Listener(database_url, "pacing_drain")
    try:
        listener.wait(0)  # connects and listens
        with psycopg.connect(database_url, autocommit=True) as other:
            for i in range(50):
                other.execute("SELECT pg_notify('pacing_drain', %s)", (str(i),))
        time.sleep(0.5)  # delivered to the listening session
        listener.drain()
        assert listener.conn is not None
        assert list(listener.conn.notifies(timeout=0)) == []
    finally:
        listener.close()


@pytest.mark.parametrize("command", ["up", "project"])
@pytest.mark.parametrize("value", ["100ms", "[/]"])  # the second is Rich markup, printed as is
def test_a_bad_tick_is_refused_before_anything_starts(command: str, value: str) -> None:
    result = CliRunner().invoke(cli_app, [command], env={TICK_ENV: value})
    assert result.exit_code == 2
    assert f"{TICK_ENV} must be whole milliseconds, 0 to 60000, got {value!r}" in result.output
