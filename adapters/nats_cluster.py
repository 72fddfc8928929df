"""Running on a NATS cluster: the server list every service is given, and the streams' replicas.

``ARBITER_NATS_URL`` names one server or several, comma-separated
(``nats://n1:4222,nats://n2:4222,nats://n3:4222``). The client connects to any of them and, when
that node goes away, reconnects to another; the list only has to name enough nodes to find the
cluster at start (the servers also gossip the others' addresses). A comma inside a password must be
percent-encoded (``%2C``): the comma is the separator.

``ARBITER_STREAM_REPLICAS`` says on how many nodes JetStream keeps each Arbiter stream (1, the
default, on a single server; 3 on a three-node cluster, which then survives the loss of one node
without losing or stopping anything). Its own module because every service (ingest, API,
delivery, the CLI's publishers) creates the streams through :func:`arbiter.adapters.bus.
ensure_streams` and reads the same two settings, and neither belongs to the publisher's code.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

__all__ = ["MAX_REPLICAS", "REPLICAS_ENV", "nats_servers", "stream_replicas"]

REPLICAS_ENV = "ARBITER_STREAM_REPLICAS"
MAX_REPLICAS = 5
"""JetStream's own limit on a stream's replica count."""


def nats_servers(url: str) -> list[str]:
    """The servers named by ``url``: one URL, or several separated by commas (blanks ignored).

    Raises :class:`ValueError` for a list with no URL in it, so a typo such as ``","`` is an
    error at start rather than a client that connects to nats-py's default server."""
    servers = [part.strip() for part in url.split(",") if part.strip()]
    if not servers:
        raise ValueError(f"no NATS server URL in {url!r}: give one, or several separated by ','")
    return servers


def stream_replicas(environ: Mapping[str, str] | None = None) -> int | None:
    """The replica count ``ARBITER_STREAM_REPLICAS`` asks for, or None when it is not set.

    None is not 1: an unset variable creates new streams with one replica but leaves an
    existing stream as it is, so a service started without the setting (a one-off CLI command,
    an old deployment) never scales a replicated stream down. A value that is not a whole number
    from 1 to :data:`MAX_REPLICAS` is refused with the accepted range."""
    raw = (os.environ if environ is None else environ).get(REPLICAS_ENV, "").strip()
    if not raw:
        return None
    try:
        replicas = int(raw)
    except ValueError:
        replicas = 0
    if not 1 <= replicas <= MAX_REPLICAS:
        raise ValueError(
            f"{REPLICAS_ENV}={raw!r} is not accepted: give a whole number from 1 to {MAX_REPLICAS}"
            " (1 on a single server, 3 on a three-node cluster)"
        )
    return replicas
