"""The bodies of ``/admin``: API keys as listed, created and revoked (never a stored secret), the
request body that creates one, and a rebuild's report."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from arbiter.adapters.keys import ApiKey
from msgspec import Meta, Struct

__all__ = ["CreatedKey", "KeyInfo", "KeyList", "NewKey", "RebuildReport"]


class KeyInfo(Struct):
    key_id: str
    name: str
    scopes: list[str]
    created_at: datetime
    revoked_at: datetime | None

    @classmethod
    def of(cls, key: ApiKey) -> KeyInfo:
        return cls(key.key_id, key.name, list(key.scopes), key.created_at, key.revoked_at)


class KeyList(Struct):
    keys: list[KeyInfo]


class CreatedKey(Struct):
    key: KeyInfo
    token: str
    """The secret, shown this once; only its SHA-256 is stored."""


class NewKey(Struct, forbid_unknown_fields=True):
    name: Annotated[str, Meta(min_length=1, max_length=128)]
    scopes: Annotated[list[Literal["read", "publish", "admin"]], Meta(min_length=1, max_length=3)]


class RebuildReport(Struct):
    projection: str
    events: int
    position: int
    generation: int
    seconds: float
