"""Server URLs as people see them: the password in a URL is never printed or logged.

Its own module because the API (logging an unreachable NATS), ``arbiter up`` (printing where
everything runs) and the CLI all show URLs, and none of them should own the rule for the others.
"""

from __future__ import annotations

import re

__all__ = ["redact"]

_PASSWORD = re.compile(r"(//[^:/@]+:)[^@/]+@")


def redact(url: str) -> str:
    """``url`` with its password replaced by ``***`` (``nats://user:***@host:4222``)."""
    return _PASSWORD.sub(r"\1***@", url)
