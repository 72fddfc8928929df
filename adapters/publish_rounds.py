"""One round of a pipelined publish: its acks counted, and which failures are worth a resend.

Apart from :mod:`arbiter.adapters.bus` because this is the bookkeeping of
:meth:`~arbiter.adapters.bus.Publisher.publish`'s resends (a node lost, a leader re-elected on a
NATS cluster), not what the bus is: its streams, subjects and message ids.
"""

from __future__ import annotations

import asyncio

from nats.errors import ConnectionReconnectingError, OutboundBufferLimitError
from nats.js.api import PubAck
from nats.js.errors import APIError, NoStreamResponseError

__all__ = ["TRANSIENT_SEND", "Round", "transient"]

_TRANSIENT_CODES = frozenset({10008})
"""JetStream error codes that pass: "JetStream system temporarily unavailable" (a cluster
without a meta leader for a moment)."""
TRANSIENT_SEND = (OutboundBufferLimitError, ConnectionReconnectingError)


def transient(error: BaseException) -> bool:
    """Whether a failed publish is worth sending again (the same bytes, the same message id)."""
    if isinstance(error, (NoStreamResponseError, *TRANSIENT_SEND, asyncio.CancelledError)):
        return True
    return isinstance(error, APIError) and error.err_code in _TRANSIENT_CODES


class Round:
    """The acks of one round: how many are out, whether there is room for more (below half
    the window once it was full) and whether all that were sent are in.

    Counted by done-callbacks, so a round of many thousand messages costs one callback each,
    not one wake-up of the publishing coroutine per ack."""

    def __init__(self, window: int) -> None:
        self.window = window
        self.tracked = 0
        self.settled = 0
        self.all_sent = False
        self.room = asyncio.Event()
        self.finished = asyncio.Event()

    def full(self) -> bool:
        if self.tracked - self.settled < self.window:
            return False
        self.room.clear()
        return True

    def track(self, future: asyncio.Future[PubAck]) -> None:
        self.tracked += 1
        future.add_done_callback(self._settle)

    def sent(self) -> None:
        self.all_sent = True
        self._settle(None, count=False)

    def wake(self) -> None:
        """A refusal: whoever waits looks at it now."""
        self.room.set()
        self.finished.set()

    def _settle(self, _: object, *, count: bool = True) -> None:
        self.settled += count
        if self.tracked - self.settled <= self.window // 2:
            self.room.set()
        if self.all_sent and self.settled == self.tracked:
            self.finished.set()
