"""One computation per answer: identical reads that miss the response cache together wait for the
first of them, then answer from the cache.

Why: the response cache (:mod:`.cache`) is emptied at every projector commit. While events stream
in (1,000/s: a few commits a second per projection), every hot route's next requests all miss at
once, and each of them computed the same answer: 16 concurrent clients meant 16 identical
leaderboards per commit, each competing for the same CPU, so the route fell to a few requests a
second exactly when it mattered. With this middleware the first request of a (path, query, key
headers, read-model state) computes; the others wait for it and then go through the app as
usual, where the cache now holds the answer.

Correctness is unchanged by construction: a waiting request is not given the leader's answer, it
is only delayed, then handled exactly as before (guards, cache lookup, ETag), so it gets what a
request arriving just after the leader would have got. If the state moved while it waited (a new
commit), it waits again for whoever computes the new state's answer, or computes it itself; if
the leader stored nothing (an error, an answer the route said not to store), it computes. The
grouping key uses the raw ``Authorization`` and ``X-API-Key`` headers rather than the viewer
(the guards that resolve it run later): two spellings of one caller merely do not share a flight.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from litestar.types import ASGIApp, Receive, Scope, Send

from .cache import ReadModelWatch

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

    def __init__(self, app: ASGIApp, flights: Flights) -> None:
        self.app = app
        self.flights = flights

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        handler = scope.get("route_handler")
        if scope["type"] != "http" or scope["method"] != "GET" or not getattr(handler, "cache", 0):
            await self.app(scope, receive, send)
            return
        running = self.flights.running
        while (key := _group(scope)) is not None:
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
            if _group(scope) == key:  # same state: the answer is stored (or not storable)
                break
        await self.app(scope, receive, send)


def _group(scope: Scope) -> str | None:
    """Path, raw query, the caller's key headers and the read-model state; None while the cache
    is off or not listening (then nothing is stored, so waiting would gain nothing)."""
    watch: ReadModelWatch = scope["litestar_app"].state["watch"]
    state = watch.state
    if state is None or not watch.enabled:
        return None
    auth = api_key = b""
    for name, value in scope["headers"]:
        name = name.lower()
        if name == b"authorization":
            auth = value
        elif name == b"x-api-key":
            api_key = value
    query = scope.get("query_string", b"")
    return f"{scope['path']}?{query!r}|{auth!r}|{api_key!r}|{state}"
