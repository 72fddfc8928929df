"""How a webhook delivery is signed, so a receiver can check who sent it and that it is fresh.
Pure: no I/O.

The signed bytes are ``<timestamp>.<body>``: the decimal Unix time of the attempt (header
``X-Arbiter-Timestamp``), a full stop, and the request body exactly as sent. The signature is
``v1=`` and the lowercase hex HMAC-SHA256 of those bytes under the owner's webhook secret
(header ``X-Arbiter-Signature``). Signing the timestamp with the body lets a receiver refuse a
replayed request (a timestamp more than a few minutes old) without keeping every request; the
``Idempotency-Key`` header (the same on every attempt of one delivery) lets it drop a repeat it
already processed, since delivery is at least once. ``v1=`` leaves room for another scheme.
"""

from __future__ import annotations

import hashlib
import hmac

__all__ = ["SCHEME", "sign", "verify"]

SCHEME = "v1"


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The ``X-Arbiter-Signature`` value of ``body`` sent at ``timestamp``."""
    mac = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256)
    return f"{SCHEME}={mac.hexdigest()}"


def verify(secret: str, timestamp: int, body: bytes, signature: str) -> bool:
    """What a receiver does (in constant time); used by the tests' receiver."""
    return hmac.compare_digest(sign(secret, timestamp, body), signature)
