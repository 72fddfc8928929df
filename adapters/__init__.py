"""Adapters: everything that talks to the world outside the process.

The event store (PostgreSQL through eventsourcing), the bus (NATS JetStream), the embedded
servers, API keys, schema migrations and arena files; the domain never imports these.
"""

__all__: list[str] = []
