"""The cluster settings: a list of NATS servers in ``ARBITER_NATS_URL``, its passwords kept out of
what is printed, and ``ARBITER_STREAM_REPLICAS`` refused unless it is a count JetStream allows."""

from __future__ import annotations

import asyncio

import pytest
from arbiter.adapters.bus import STREAM, connect, ensure_streams
from arbiter.adapters.nats_cluster import nats_servers, stream_replicas
from arbiter.adapters.urls import redact
from nats.js.errors import APIError


def test_a_comma_separated_list_names_every_server() -> None:
    assert nats_servers("nats://a:4222") == ["nats://a:4222"]
    assert nats_servers(" nats://a:4222, nats://b:4222 ,,nats://c:4222") == [
        "nats://a:4222", "nats://b:4222", "nats://c:4222",
    ]  # fmt: skip
    for empty in ("", " , ", ","):
        with pytest.raises(ValueError, match="no NATS server URL"):
            nats_servers(empty)


def test_every_password_in_the_list_is_redacted() -> None:
    shown = redact("nats://a:pw1@n1:4222,nats://b:pw2@n2:4222,nats://n3:4222")
    assert shown == "nats://a:***@n1:4222,nats://b:***@n2:4222,nats://n3:4222"


def test_a_token_and_a_password_holding_an_at_are_redacted() -> None:
    assert redact("nats://s3cr3t@h:4222") == "nats://***@h:4222"
    assert redact("nats://:tok@h:4222") == "nats://:***@h:4222"
    assert redact("nats://u:p@ss@h:4222") == "nats://u:***@h:4222"
    assert redact("tls://tok@a:4222,nats://u:pw@b:4222") == "tls://***@a:4222,nats://u:***@b:4222"
    # A PostgreSQL user name alone is no secret; a query after the path is left alone.
    url = "postgresql://postgres@/arbiter?host=/tmp/x@y"
    assert redact(url) == url
    assert redact("postgresql://u:pw@h/db") == "postgresql://u:***@h/db"


def test_replicas_setting() -> None:
    assert stream_replicas({}) is None  # unset: existing streams are left as they are
    assert stream_replicas({"ARBITER_STREAM_REPLICAS": " 3 "}) == 3
    for bad in ("0", "6", "three", "2.5", "-1"):
        with pytest.raises(ValueError, match="from 1 to 5"):
            stream_replicas({"ARBITER_STREAM_REPLICAS": bad})


def test_several_urls_reach_the_server_when_one_is_dead(nats_url: str) -> None:
    async def go() -> int:
        dead = "nats://127.0.0.1:1"
        nc = await connect(f"{dead},{nats_url}", max_reconnect_attempts=2)
        try:
            await ensure_streams(nc.jetstream())
            return (await nc.jetstream().stream_info(STREAM)).config.num_replicas
        finally:
            await nc.close()

    assert asyncio.run(go()) == 1


def test_three_replicas_on_a_single_server_name_the_setting(nats_url: str) -> None:
    async def go() -> None:
        nc = await connect(nats_url, max_reconnect_attempts=1)
        try:
            await ensure_streams(nc.jetstream(), replicas=3)
        finally:
            await nc.close()

    with pytest.raises(APIError, match="ARBITER_STREAM_REPLICAS to 1 on a single server"):
        asyncio.run(go())
