"""Which webhook URLs an ``experiment.created`` may carry, and which addresses a delivery may
reach (the SSRF rules of issue 13). Pure: no servers."""

from __future__ import annotations

import pytest
from arbiter.domain.webhook_signature import sign, verify
from arbiter.domain.webhook_urls import address_problem, url_problem


@pytest.mark.parametrize(
    "url",
    ["https://example.com/hook", "http://example.com:8080/a?b=c", "HTTPS://Example.com"],
)
def test_http_and_https_urls_pass(url: str) -> None:
    assert url_problem(url) is None


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("ftp://example.com/x", "http or https"),
        ("file:///etc/passwd", "http or https"),
        ("javascript:alert(1)", "http or https"),
        ("example.com/hook", "http or https"),
        ("https:///nohost", "no host"),
        ("https://user:pw@example.com/", "credentials"),
        ("https://example.com:0/", "port 0"),
        ("https://example.com:99999/", "not a valid URL"),
        ("https://example.com/a b", "whitespace"),
    ],
)
def test_other_urls_are_refused_saying_why(url: str, why: str) -> None:
    problem = url_problem(url)
    assert problem is not None and why in problem


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("::ffff:127.0.0.1", "loopback"),  # IPv4-mapped IPv6 is judged as its IPv4
        ("10.1.2.3", "private"),
        ("192.168.0.1", "private"),
        ("fd00::1", "private"),
        ("169.254.169.254", "link-local"),  # cloud metadata services live here
        ("fe80::1", "link-local"),
        ("0.0.0.0", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("100.64.0.1", "non-public"),
    ],
)
def test_non_public_addresses_are_refused(address: str, kind: str) -> None:
    problem = address_problem(address)
    assert problem is not None and f"a {kind} address" in problem
    assert "ARBITER_WEBHOOK_ALLOW_PRIVATE" in problem


@pytest.mark.parametrize("address", ["93.184.215.14", "2606:4700::6810:85e5", "8.8.8.8"])
def test_public_addresses_pass(address: str) -> None:
    assert address_problem(address) is None


def test_the_signature_covers_timestamp_and_body() -> None:
    body = b'{"type":"experiment.completed"}'
    signature = sign("s3cret", 1_700_000_000, body)
    assert signature.startswith("v1=") and len(signature) == 3 + 64
    assert verify("s3cret", 1_700_000_000, body, signature)
    assert not verify("s3cret", 1_700_000_001, body, signature)  # another time
    assert not verify("s3cret", 1_700_000_000, body + b" ", signature)  # another body
    assert not verify("other", 1_700_000_000, body, signature)  # another secret
