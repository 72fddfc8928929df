"""The embedded servers: start, serve, stop without leftovers, keep data, recover from a kill."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import nats
import psycopg
import pytest
from arbiter.adapters.embedded import EmbeddedNats, EmbeddedPostgres, EmbeddedServers

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX process handling")


def gone(pid: int) -> bool:
    """Whether ``pid`` no longer exists (``os.kill(pid, 0)`` raises)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def wait_gone(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not gone(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return gone(pid)


async def js_publish(url: str, stream: str, subject: str, payload: bytes) -> None:
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        await js.add_stream(name=stream, subjects=[f"{stream.lower()}.>"])
        ack = await js.publish(subject, payload)
        assert ack.stream == stream
    finally:
        await nc.close()


async def js_read(url: str, stream: str) -> tuple[int, bytes]:
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        info = await js.stream_info(stream)
        msg = await js.get_msg(stream, 1)
        return info.state.messages, msg.data or b""
    finally:
        await nc.close()


def pg_write(url: str) -> None:
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
        assert conn.execute("SELECT current_database()").fetchone() == ("arbiter",)
        conn.execute("CREATE TABLE IF NOT EXISTS kept (v text)")
        conn.execute("INSERT INTO kept VALUES ('survives')")


def pg_read(url: str) -> list[str]:
    with psycopg.connect(url) as conn:
        return [r[0] for r in conn.execute("SELECT v FROM kept").fetchall()]


def test_start_serve_stop_and_data_survives(tmp_path: Path) -> None:
    servers = EmbeddedServers(tmp_path / "home")
    t0 = time.perf_counter()
    database_url, nats_url = servers.start()
    cold = time.perf_counter() - t0
    try:
        assert nats_url.startswith("nats://127.0.0.1:")
        pg_write(database_url)
        asyncio.run(js_publish(nats_url, "KEPT", "kept.one", b"hello"))
        pg_pid, nats_pid = servers.postgres.pid, servers.nats.pid
        assert pg_pid is not None and nats_pid is not None
    finally:
        servers.stop()
    assert gone(pg_pid), "postmaster still exists after stop()"
    assert gone(nats_pid), "nats-server still exists after stop()"
    assert not (tmp_path / "home" / "nats.pid").exists()
    servers.stop()  # idempotent

    t0 = time.perf_counter()
    with EmbeddedServers(tmp_path / "home") as again:
        warm = time.perf_counter() - t0
        database_url, nats_url = again.postgres.url, again.nats.url
        assert database_url is not None and nats_url is not None
        assert pg_read(database_url) == ["survives"]
        assert asyncio.run(js_read(nats_url, "KEPT")) == (1, b"hello")
        pids = [again.postgres.pid, again.nats.pid]
    assert all(pid is not None and gone(pid) for pid in pids)
    print(f"\nembedded start: cold {cold:.2f}s, warm {warm:.2f}s")


def test_nats_restart_keeps_port_and_stream(tmp_path: Path) -> None:
    with EmbeddedNats(tmp_path / "nats") as server:
        url = server.url
        assert url is not None
        asyncio.run(js_publish(url, "R", "r.x", b"1"))
        old_pid = server.pid
        assert server.restart() == url
        assert old_pid is not None and gone(old_pid)
        assert asyncio.run(js_read(url, "R")) == (1, b"1")
    assert (tmp_path / "nats.log").stat().st_size > 0


def test_long_data_dir_uses_short_socket_dir(tmp_path: Path) -> None:
    deep = tmp_path.joinpath(*(["a-rather-long-directory-name"] * 4), "pg")
    pg = EmbeddedPostgres(deep)
    for _ in range(2):  # the second start reuses the /tmp socket dir
        with pg:
            assert pg.url is not None
            assert "host=/tmp/arbiter-pg-" in pg.url
            with psycopg.connect(pg.url) as conn:
                assert conn.execute("SELECT 1").fetchone() == (1,)


OWNER = textwrap.dedent(
    """
    import json, signal, sys, time
    from pathlib import Path
    from arbiter.adapters.embedded import EmbeddedServers

    servers = EmbeddedServers(Path(sys.argv[1]))

    def on_term(signum, frame):
        servers.stop()
        sys.exit(0)

    signal.signal(signal.SIGTERM, on_term)
    db, nc = servers.start()
    print(json.dumps({"pg": servers.postgres.pid, "nats": servers.nats.pid, "db": db}), flush=True)
    while True:
        time.sleep(1)
    """
)


def spawn_owner(home: Path) -> tuple[subprocess.Popen[str], dict[str, object]]:
    proc = subprocess.Popen(
        [sys.executable, "-c", OWNER, str(home)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line, "owner process did not start the servers"
    return proc, json.loads(line)


def test_owner_sigterm_leaves_nothing_behind(tmp_path: Path) -> None:
    proc, info = spawn_owner(tmp_path / "home")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0
    assert gone(int(info["pg"])) and gone(int(info["nats"]))  # type: ignore[arg-type]


def test_owner_sigkill_is_recovered_on_next_start(tmp_path: Path) -> None:
    home = tmp_path / "home"
    proc, info = spawn_owner(home)
    pg_write(str(info["db"]))
    proc.kill()  # no handler runs: both servers are orphaned
    proc.wait(10)
    assert not gone(int(info["nats"]))  # type: ignore[arg-type]
    with EmbeddedServers(home) as servers:
        # The orphans were stopped, not adopted; the data is intact.
        assert wait_gone(int(info["nats"]))  # type: ignore[arg-type]
        assert servers.postgres.pid != info["pg"]
        assert servers.postgres.url is not None
        assert pg_read(servers.postgres.url) == ["survives"]


def test_stale_postmaster_pid_after_server_crash(tmp_path: Path) -> None:
    pg = EmbeddedPostgres(tmp_path / "pg")
    url = pg.start()
    pg_write(url)
    pid = pg.pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)  # the postmaster dies hard: postmaster.pid stays behind
    time.sleep(0.2)
    pg.stop()  # reaps it, kills any backend left
    assert gone(pid)
    assert (tmp_path / "pg" / "postmaster.pid").exists()
    with pg:  # starts anyway (crash recovery), same data
        assert pg.url is not None
        assert pg_read(pg.url) == ["survives"]


def test_the_server_has_a_bulk_load_sized_page_cache(database_url: str) -> None:
    """512 MB of shared buffers, not PostgreSQL's 128 MB: a bulk import's indexes outgrow the
    default, and PostgreSQL's CPU a row grew with it (``adapters/embedded/postgres.py``)."""
    if os.environ.get("ARBITER_TEST_DATABASE_URL"):
        pytest.skip("an external server: its settings are its owner's")
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SHOW shared_buffers").fetchone() == ("512MB",)
