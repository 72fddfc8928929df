"""In-process word that a read model just committed, for readers in the same process.

A projector (or a rebuild's swap) tells the database's listeners with ``NOTIFY`` (see
:data:`arbiter.projections.tracking.CHANNEL`), which reaches another process within a
millisecond. A reader in the same process, such as the API's response cache under ``arbiter
up``, can know at once: :func:`committed` runs every subscriber synchronously, in the committing
thread, right after the commit, so a request that starts after the projector's call has
returned never sees an answer cached for the state before it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

__all__ = ["committed", "subscribe", "unsubscribe"]

_lock = threading.Lock()
_subscribers: list[Callable[[], None]] = []


def subscribe(callback: Callable[[], None]) -> None:
    """Run ``callback`` after every commit of a read model in this process (from any thread;
    it must be quick and must not raise)."""
    with _lock:
        _subscribers.append(callback)


def unsubscribe(callback: Callable[[], None]) -> None:
    with _lock:
        if callback in _subscribers:
            _subscribers.remove(callback)


def committed() -> None:
    """A read model of this process's database just committed a new state."""
    with _lock:
        callbacks = list(_subscribers)
    for callback in callbacks:
        callback()
