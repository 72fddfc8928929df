"""What a webhook URL may be, and which addresses a delivery may reach. Pure: no I/O.

Two checks at two times, because a name can resolve elsewhere tomorrow:

* when an ``experiment.created`` is validated, :func:`url_problem` refuses anything but an
  absolute ``http`` or ``https`` URL with a host (no credentials in it: the URL is shown in
  ``GET /experiments`` and stored in the log, so a password there would leak);
* when the webhook worker delivers, it resolves the host and :func:`address_problem` refuses
  every private, loopback, link-local, multicast, reserved or unspecified address (IPv4-mapped
  IPv6 judged as its IPv4), unless ``ARBITER_WEBHOOK_ALLOW_PRIVATE=true``: a webhook must not
  become a way to make Arbiter's host call its own network (SSRF).
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

__all__ = ["SCHEMES", "address_problem", "url_problem"]

SCHEMES = ("http", "https")


def url_problem(url: str) -> str | None:
    """Why ``url`` cannot be a webhook URL (a sentence), or None when it can."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        return f"webhook_url {url!r} is not a valid URL ({exc})"
    if parts.scheme.lower() not in SCHEMES:
        return f"webhook_url {url!r} must be an http or https URL"
    if not parts.hostname:
        return f"webhook_url {url!r} has no host"
    if parts.username is not None or parts.password is not None:
        return f"webhook_url {url!r} must not hold credentials (user:password@)"
    if port == 0:
        return f"webhook_url {url!r} has port 0"
    if any(c.isspace() or ord(c) < 32 for c in url):
        return f"webhook_url {url!r} holds whitespace or a control character"
    return None


def address_problem(address: str) -> str | None:
    """Why a delivery may not connect to ``address`` (an IP literal), or None when it may."""
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    for refused, what in (
        (ip.is_loopback, "loopback"),
        (ip.is_unspecified, "unspecified"),
        (ip.is_link_local, "link-local"),
        (ip.is_multicast, "multicast"),
        (ip.is_private, "private"),
        (ip.is_reserved, "reserved"),
        (not ip.is_global, "non-public"),  # shared (100.64/10), documentation, ... ranges
    ):
        if refused:
            return (
                f"{ip} is a {what} address; webhooks reach public addresses only "
                "(set ARBITER_WEBHOOK_ALLOW_PRIVATE=true to allow it)"
            )
    return None
