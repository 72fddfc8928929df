"""Cache hits answered at the door: a keyless ``GET`` of a cached route whose answer is in the
response cache is sent from there before Litestar routes the request.

Why: under load a cache hit went through the whole stack (the router, the request metrics
middleware, the ETag middleware, single flight, the guards, the parameter check, the cache key,
a msgpack decode of the stored messages) and cost about twice a Litestar route that returns the
same bytes from memory (``benchmarks/api_load.py``: 0.51 to 0.58 of that route's requests/s).
Here a hit costs a dictionary lookup and two ``send`` calls.

What it answers, and why that is the very answer the stack would give:

* Only ``GET`` requests without ``Authorization``, ``X-API-Key`` or ``Cookie``: a keyless
  caller's viewer is known without the database (:meth:`.auth.Authenticator.keyless_viewer`:
  the auth mode, whether a key exists as last looked up, public reads), so the cache key is the
  one :func:`.cache.cache_key` builds (path, query string as sent, viewer, the state of the
  projections the route reads). When that viewer is not known without a lookup (``auto``
  mode, the "any key?" answer expired) or a keyless read is refused (401), the request goes
  through the stack, which asks and answers.
* Only paths the stack has routed to a cached handler (:meth:`FrontDoor.learn`, called by
  :class:`.single_flight.SingleFlight`): the door knows each path's route template (for the
  metrics) and the projections it reads (for the key).
* Only what the response cache holds under that key, unexpired, at the read-model state of the
  request's arrival: an answer computed by the stack for the same state and viewer. A miss goes
  through the stack (single flight, the handler), which stores it; the next request is a hit.
* The headers are those :class:`.cache.Validators` adds (``ETag``, ``Cache-Control``, ``Vary``),
  from the same functions, and a matching ``If-None-Match`` gets the same 304.
* The request is counted in the same Prometheus metrics (route template, method, status,
  duration), so ``/metrics`` shows hits as before.

``ARBITER_RESPONSE_CACHE=off`` or a watch without a connection leaves no state, so nothing is
answered here then: the stack computes every answer, as documented in :mod:`.cache`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from litestar._asgi.utils import is_valid_host
from litestar.plugins.prometheus.middleware import PrometheusMiddleware
from litestar.types import Scope, Send
from msgspec import msgpack

from .auth import Authenticator
from .cache import (
    UNTAGGED_HEADER,
    ReadModelWatch,
    ResponseStore,
    answer_key,
    not_modified_headers,
    reads_of,
    state_token,
    validated_headers,
    wants,
)

__all__ = ["FrontDoor"]

_KEYED = frozenset({b"authorization", b"x-api-key", b"cookie"})
"""Request headers that may make the answer the caller's own: such requests use the stack."""
_ROUTES_MAX = 50_000
"""Paths remembered at most (one per competitor page, say); past it the memory starts over."""
_PATH_MAX = 512
"""Longest path remembered: with :data:`_ROUTES_MAX`, the paths' memory stays under 26 MB."""
_METRIC_PREFIX = "arbiter_http"  # .routes.metrics.request_metrics's prefix and app name
_APP_NAME = "arbiter"


@dataclass(frozen=True)
class _Answer:
    """A stored answer, decoded once: its status line and headers as the stack sends them."""

    data: bytes
    """The store's bytes it was decoded from (by identity: a new answer is a new object)."""
    start: dict[str, Any]
    body: dict[str, Any]
    not_modified: dict[str, Any] | None
    """The 304 start message for a matching ``If-None-Match``; None: the answer has no ETag."""
    etag: str | None


class FrontDoor:
    """See the module docstring."""

    def __init__(self, store: ResponseStore, watch: ReadModelWatch, auth: Authenticator) -> None:
        self.store = store
        self.watch = watch
        self.auth = auth
        self.routes: dict[str, tuple[str, tuple[str, ...]]] = {}
        """Path as requested -> (route template, projections the route reads)."""
        self._answers: dict[str, _Answer] = {}
        self._tokens: tuple[tuple[int, ...] | None, dict[tuple[str, ...], str]] = (None, {})
        """The state tokens of the current state, per projection set (built once per state)."""
        self.hits = 0

    def learn(self, scope: Scope) -> None:
        """Remember a path the stack routed to a cached ``GET`` handler."""
        path = scope["path"]
        if len(path) > _PATH_MAX:  # made-up ids must not fill memory: such paths use the stack
            return
        if path not in self.routes:
            if len(self.routes) >= _ROUTES_MAX:
                self.routes.clear()
            template = scope.get("path_template", path)  # type: ignore[misc]
            self.routes[path] = (template, reads_of(scope))

    async def answer(self, scope: Scope, send: Send) -> bool:
        """Send the cached answer of a keyless ``GET`` and return True; False: not answered
        here (the caller runs the app)."""
        if scope["method"] != "GET":
            return False
        route = self.routes.get(scope["path"])
        state = self.watch.state
        if route is None or state is None or not self.watch.enabled or scope.get("root_path"):
            return False  # a root path: Litestar routes what is left of it, the door does not
        tags: str | None = None
        host_seen = False
        for name, value in scope["headers"]:
            name = name.lower()  # lower already from uvicorn; the ASGI spec does not promise it
            if name in _KEYED:
                return False
            if name == b"if-none-match" and tags is None:  # the first, as Validators reads it
                tags = value.decode("latin-1")
            elif name == b"host" and not host_seen:  # Litestar's router refuses a bad one (400)
                host_seen = True
                if not is_valid_host(value):
                    return False
        viewer = self.auth.keyless_viewer()
        if viewer is None:
            return False
        started = time.perf_counter()
        template, reads = route
        who = "*" if viewer.everything else (viewer.source or "-")
        query = scope.get("query_string", b"").decode("latin-1")
        key = answer_key(scope["path"], query, who, self._token(state, reads))
        data = self.store.peek(key)
        if data is None:
            return False
        found = self._answers.get(key)
        if found is None or found.data is not data:
            found = self._decode(key, data)
            if found is None:
                return False
        # Counted as the middleware counts the stack's requests: in progress while sending,
        # and in the totals even when ``send`` raises (a client gone mid-answer).
        in_progress = _in_progress(template)
        if in_progress is not None:
            in_progress.inc()
        try:
            if tags is not None and found.not_modified is not None and wants(tags, found.etag):
                status = 304
                # Fresh dicts and header lists per request, as the stack sends: an outer
                # wrapper that edits a message in place must not change the next answer.
                await send({**found.not_modified, "headers": list(found.not_modified["headers"])})
                await send({"type": "http.response.body", "body": b"", "more_body": False})
            else:
                status = found.start["status"]
                await send({**found.start, "headers": list(found.start["headers"])})
                await send({**found.body})
        finally:
            if in_progress is not None:
                in_progress.dec()
            self.hits += 1
            _count(template, status, time.perf_counter() - started)
        return True

    def _token(self, state: tuple[int, ...], reads: tuple[str, ...]) -> str:
        current, tokens = self._tokens
        if current != state:
            tokens = {}
            self._tokens = (state, tokens)
        token = tokens.get(reads)
        if token is None:
            token = tokens[reads] = state_token(state, reads)
        return token

    def _decode(self, key: str, data: bytes) -> _Answer | None:
        """The stored messages as :class:`.cache.Validators` sends them to a keyless caller;
        None for an answer in several body messages (none of the cached routes streams)."""
        if len(self._answers) > 2 * self.store.size() + 64:  # answers the store no longer has
            self._answers = {k: a for k, a in self._answers.items() if self.store.peek(k)}
        messages = msgpack.decode(data)
        if len(messages) != 2 or messages[1].get("more_body"):
            return None
        start, body = messages
        headers = [(bytes(k), bytes(v)) for k, v in start.get("headers", ())]
        etag: str | None = None
        not_modified = None
        if any(k == UNTAGGED_HEADER for k, _ in headers):  # an answer of expire_within: no ETag
            headers = [(k, v) for k, v in headers if k != UNTAGGED_HEADER]
        else:
            headers, etag = validated_headers(headers, key, keyed=False)
            not_modified = {
                "type": "http.response.start",
                "status": 304,
                "headers": not_modified_headers(headers),
            }
        found = _Answer(
            data=data,
            start={"type": "http.response.start", "status": start["status"], "headers": headers},
            body={"type": "http.response.body", "body": bytes(body["body"]), "more_body": False},
            not_modified=not_modified,
            etag=etag,
        )
        self._answers[key] = found
        return found


_children: dict[tuple[str, int], tuple[Any, Any]] = {}
_gauges: dict[str, Any] = {}


def _in_progress(template: str) -> Any:
    """The middleware's in-progress gauge of the route (its labels: method, route template, the
    status the middleware starts from, app name); None before the middleware has made it."""
    gauge = _gauges.get(template)
    if gauge is None:
        metric = PrometheusMiddleware._metrics.get(f"{_METRIC_PREFIX}_requests_in_progress")
        if metric is None:
            return None
        gauge = _gauges[template] = metric.labels("GET", template, 200, _APP_NAME)
    return gauge


def _count(template: str, status: int, seconds: float) -> None:
    """Count a request answered at the door as :class:`PrometheusMiddleware` counts the others
    (the same metrics and labels: method, route template, status, app name). The middleware
    creates them at its first request, which the door's first answer always follows."""
    child = _children.get((template, status))
    if child is None:
        metrics = PrometheusMiddleware._metrics
        labels = ("GET", template, status, _APP_NAME)
        total = metrics.get(f"{_METRIC_PREFIX}_requests_total")
        duration = metrics.get(f"{_METRIC_PREFIX}_request_duration_seconds")
        if total is None or duration is None:
            return
        child = _children[(template, status)] = (
            total.labels(*labels),
            duration.labels(*labels),
        )
    child[0].inc()
    child[1].observe(seconds)
