"""Server URLs as people see them: the secret in a URL is never printed or logged.

Its own module because the API (logging an unreachable NATS), ``arbiter up`` (printing where
everything runs) and the CLI all show URLs, and none of them should own the rule for the others.
"""

from __future__ import annotations

import re

__all__ = ["redact"]

_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://(?P<info>[^/,]*)@")
"""A URL's user information: everything from ``//`` to the last ``@`` before the host's end (a
``/`` or, in a list of servers, a ``,``), so a password holding an ``@`` is covered whole."""
_TOKEN_SCHEMES = frozenset({"nats", "tls", "ws", "wss"})
"""Schemes whose user name alone is a secret: NATS takes ``nats://TOKEN@host`` as a token."""


def _hide(match: re.Match[str]) -> str:
    scheme, info = match["scheme"], match["info"]
    if ":" in info:
        info = info.split(":", 1)[0] + ":***"
    elif scheme.lower() in _TOKEN_SCHEMES:
        info = "***"
    return f"{scheme}://{info}@"


def redact(url: str) -> str:
    """``url`` with its password replaced by ``***`` (``nats://user:***@host:4222``), and a NATS
    token (``nats://TOKEN@host``) too; every URL of a comma-separated list."""
    return _USERINFO.sub(_hide, url)
