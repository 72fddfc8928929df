"""One computation per answer: identical reads that miss the response cache together wait for the
first of them, then answer from the cache.

Why: the response cache (:mod:`.cache`) is emptied at every projector commit. While events stream
in (1,000/s: a few commits a second per projection), every hot route's next requests all miss at
once, and each of them computed the same answer: 16 concurrent clients meant 16 identical
leaderboards per commit, each competing for the same CPU, so the route fell to a few requests a
second exactly when it mattered. With this middleware the first request of a (path, query, key
headers, read-model state) computes; the others wait for it and then go through the app as
usual, where the cache now holds the answer: the cache key of a request is built with the
read-model state at its arrival (:func:`.cache.pin_state`), so the waiters find the leader's
answer even when a commit came while it was computed (at 1,000 events/s, a slow answer such as
``/summary`` is always overtaken by the next commit, and waiters that re-keyed on the new state
would queue behind one computation after another).

Correctness is unchanged by construction: a waiting request is not given the leader's answer, it
is only delayed, then handled exactly as before (guards, cache lookup, ETag): it gets an answer
of the state it arrived in, or of a newer one, as a cache hit at its arrival would have been. If
the leader stored nothing (an error, an answer the route said not to store) or the entry went
(the store is emptied at each commit), it computes its own. The
grouping key uses the raw ``Authorization`` and ``X-API-Key`` headers rather than the viewer
(the guards that resolve it run later): two spellings of one caller merely do not share a flight.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from litestar.types import ASGIApp, Receive, Scope, Send

from .cache import pin_state, reads_of, state_token
from .front_door import FrontDoor

__all__ = ["Flights", "SingleFlight"]


@dataclass
class Flights:
    """The computations in flight, by grouping key, and how many requests led or waited."""

    running: dict[str, asyncio.Event] = field(default_factory=dict)
    led: int = 0
    """Requests that went through without waiting (the first of their group, or alone)."""
    waited: int = 0
    """Times a request waited for another's computation."""


class SingleFlight:
    """ASGI middleware for the cached routes (``cache=`` on the handler), GET only; innermost of
    the app's middleware, so a leader's answer is stored before its waiters are released."""

    def __init__(self, app: ASGIApp, flights: Flights, door: FrontDoor | None = None) -> None:
        self.app = app
        self.flights = flights
        self.door = door
        """Told of every path routed here, so it can answer the next hit itself."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        handler = scope.get("route_handler")
        if scope["type"] != "http" or scope["method"] != "GET" or not getattr(handler, "cache", 0):
            await self.app(scope, receive, send)
            return
        if self.door is not None:
            self.door.learn(scope)
        state = pin_state(scope)
        if state is None:  # answered uncached: waiting would gain nothing
            await self.app(scope, receive, send)
            return
        running = self.flights.running
        key = _group(scope, state)
        flight = running.get(key)
        if flight is None:  # lead: compute (or hit), then release the waiters
            flight = running[key] = asyncio.Event()
            self.flights.led += 1
            try:
                await self.app(scope, receive, send)
            finally:
                del running[key]
                flight.set()
            return
        self.flights.waited += 1
        await flight.wait()
        await self.app(scope, receive, send)  # a hit, unless the leader stored nothing


def _group(scope: Scope, state: tuple[int, ...]) -> str:
    """Path, raw query, the caller's key headers and, at arrival, the state of the projections
    the route reads (as its cache key has it)."""
    auth = api_key = b""
    for name, value in scope["headers"]:
        name = name.lower()
        if name == b"authorization":
            auth = value
        elif name == b"x-api-key":
            api_key = value
    query = scope.get("query_string", b"")
    return f"{scope['path']}?{query!r}|{auth!r}|{api_key!r}|{state_token(state, reads_of(scope))}"
