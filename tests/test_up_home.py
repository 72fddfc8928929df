"""``arbiter up`` owns its ARBITER_HOME and supervises what it started; nothing waits hidden.

Real ``arbiter up`` subprocesses, each on its own home under ``tmp_path`` and its own free API
and NATS ports (so parallel runs never collide). Each ``up`` start costs seconds, so every test
checks several things against one running ``up``.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import psutil
import psycopg
import pytest
from arbiter.adapters.bus import Publisher
from arbiter.adapters.embedded import find_free_port

from .helpers import battle

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX process handling")

ARBITER = [sys.executable, "-m", "arbiter.services.cli"]


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARBITER_")}
    env["ARBITER_HOME"] = str(home)
    env.update(extra)
    return env


def _cli(*args: str, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*ARBITER, *args], env=env, capture_output=True, text=True,
                          timeout=timeout)  # fmt: skip


def _until(what: str, check: Callable[[], object], timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


class Up:
    """One ``arbiter up`` subprocess; its output goes to a file, readable while it runs."""

    def __init__(self, home: Path, port: int, nats_port: int, **env: str) -> None:
        self.home, self.port, self.nats_port = home, port, nats_port
        self.env = _env(home, **env)
        self.out = home.parent / f"up-{port}.out"
        self.base = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Up:
        self.home.mkdir(parents=True, exist_ok=True)
        with open(self.out, "ab") as out:
            self.proc = subprocess.Popen(
                [*ARBITER, "up", "--port", str(self.port), "--nats-port", str(self.nats_port)],
                env=self.env, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        return self

    def output(self) -> str:
        return self.out.read_text(errors="replace")

    def health(self, timeout: float = 3) -> tuple[int, dict[str, Any]]:
        try:
            r = httpx.get(f"{self.base}/health", timeout=timeout)
        except httpx.HTTPError:
            return 0, {}
        return r.status_code, r.json()

    def wait_healthy(self, timeout: float = 90) -> None:
        def ok() -> bool:
            assert self.proc is not None and self.proc.poll() is None, self.output()
            return self.health()[0] == 200 and self.health()[1]["status"] == "ok"

        _until("arbiter up healthy", ok, timeout)

    def runtime(self) -> dict[str, Any]:
        return json.loads((self.home / "runtime.json").read_text())  # type: ignore[no-any-return]

    def server_pids(self) -> dict[str, int]:
        assert self.proc is not None
        found = {}
        for child in psutil.Process(self.proc.pid).children():
            name = child.name()
            if name in ("postgres", "nats-server"):
                found[name] = child.pid
        return found

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> float:
        """Signal it and wait; the seconds it took to exit."""
        assert self.proc is not None
        t0 = time.monotonic()
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        self.proc.wait(timeout)
        return time.monotonic() - t0


@contextmanager
def running_up(home: Path, nats_port: int | None = None, **env: str) -> Iterator[Up]:
    up = Up(home, find_free_port(), nats_port or find_free_port(), **env).start()
    children: list[psutil.Process] = []
    try:
        up.wait_healthy()
        assert up.proc is not None
        children = psutil.Process(up.proc.pid).children(recursive=True)
        yield up
    except BaseException:
        print("arbiter up printed:\n" + up.output())
        raise
    finally:
        if up.proc is not None and up.proc.poll() is None:
            up.stop()
        psutil.wait_procs(children, timeout=15)


def _publish(nats_url: str, events: list[dict[str, Any]]) -> None:
    async def go() -> None:
        async with Publisher(nats_url, reconnect_attempts=20) as publisher:
            await publisher.publish(events)

    asyncio.run(go())


def _stored(database_url: str) -> int:
    with psycopg.connect(database_url, connect_timeout=5) as conn:
        return int(conn.execute("SELECT count(*) FROM arbiter_event_ids").fetchone()[0])  # type: ignore[index]


def _battles(prefix: str, n: int) -> list[dict[str, Any]]:
    return [battle(f"{prefix}{i}", f"m{i % 5}", f"m{(i + 1) % 5}") for i in range(n)]


# -- one up per home ----------------------------------------------------------------------------


def test_one_up_owns_its_home(tmp_path: Path) -> None:
    """A second ``up`` exits 2 naming the holder and changes nothing; a command whose servers do
    not answer fails rather than start its own; a taken API or NATS port is refused before
    anything starts; HEAD /health answers like GET."""
    home = tmp_path / "home"
    with running_up(home) as first:
        pids = first.server_pids()
        assert set(pids) == {"postgres", "nats-server"}
        recorded = (home / "runtime.json").read_text()
        assert first.runtime()["nats_url"] == f"nats://127.0.0.1:{first.nats_port}"

        second = _cli("up", "--port", str(find_free_port()), "--nats-port",
                      str(find_free_port()), env=first.env)  # fmt: skip
        assert second.returncode == 2, second.stdout + second.stderr
        message = " ".join(second.stderr.split())
        assert f"pid {first.proc.pid}" in message and "arbiter up" in message, message  # type: ignore[union-attr]

        # Ctrl-C on a second up (here while it waits for the home) leaves the first alone.
        other = Up(home, find_free_port(), find_free_port()).start()
        time.sleep(0.5)
        other.stop(signal.SIGINT)
        assert (home / "runtime.json").read_text() == recorded
        assert first.server_pids() == pids and first.health()[0] == 200

        # A command while up's PostgreSQL does not answer: a reason and exit 2, nothing started
        # or stopped (before, it fell through to starting servers on the home, killing up's).
        data = json.loads(recorded)
        data["database_url"] = "postgresql://postgres@/arbiter?host=/nonexistent&port=5432"
        (home / "runtime.json").write_text(json.dumps(data))
        board = _cli("leaderboard", env=first.env)
        assert board.returncode == 2, board.stdout + board.stderr
        assert "does not answer" in " ".join(board.stderr.split()), board.stderr
        assert first.server_pids() == pids and first.health()[0] == 200
        (home / "runtime.json").write_text(recorded)
        assert _cli("leaderboard", env=first.env).returncode == 0

        # The API port taken: exit 2 naming it and --port; nothing started on that home.
        elsewhere = tmp_path / "elsewhere"
        taken = _cli("up", "--port", str(first.port), "--nats-port", str(find_free_port()),
                     env=_env(elsewhere))  # fmt: skip
        said = " ".join(taken.stderr.split())
        assert taken.returncode == 2 and f"port {first.port}" in said and "--port" in said, said
        assert not (elsewhere / "pg").exists() and not (elsewhere / "nats").exists()
        # The NATS port taken: exit 2 naming it and --nats-port.
        taken = _cli("up", "--port", str(find_free_port()), "--nats-port",
                     str(first.nats_port), env=_env(elsewhere))  # fmt: skip
        said = " ".join(taken.stderr.split())
        assert taken.returncode == 2 and f"port {first.nats_port}" in said, said
        assert "--nats-port" in said and not (elsewhere / "pg").exists(), said

        get = httpx.get(f"{first.base}/health", timeout=5)
        head = httpx.head(f"{first.base}/health", timeout=5)
        assert head.status_code == get.status_code == 200
        assert head.content == b"" and head.headers["content-type"] == get.headers["content-type"]
        assert head.headers["content-length"] == get.headers["content-length"]

        assert first.server_pids() == pids
        assert first.stop() < 10 and first.proc.returncode == 0, first.output()  # type: ignore[union-attr]
    assert not (home / "runtime.json").exists()


def test_a_command_holding_the_home_is_named_and_left_alone(tmp_path: Path) -> None:
    """While another process holds the home (a command running on its own embedded servers),
    neither a command nor ``up`` starts servers there: each exits 2 naming the holder."""
    home = tmp_path / "home"
    env = _env(home)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, json, os, sys, time\n"
         "os.makedirs(os.path.dirname(sys.argv[1]), exist_ok=True)\n"
         "f = open(sys.argv[1], 'w'); fcntl.flock(f, fcntl.LOCK_EX)\n"
         "f.write(json.dumps({'pid': os.getpid(), 'command': 'arbiter import'})); f.flush()\n"
         "print('held', flush=True); time.sleep(60)", str(home / "lock")],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        for args in (["leaderboard"], ["up", "--port", str(find_free_port()), "--nats-port",
                                        str(find_free_port())]):  # fmt: skip
            result = _cli(*args, env=env)
            said = " ".join(result.stderr.split())
            assert result.returncode == 2, result.stdout + said
            assert f"`arbiter import` (pid {holder.pid})" in said, said
        assert not (home / "pg").exists() and not (home / "nats").exists()
    finally:
        holder.kill()
        holder.wait()


# -- supervision --------------------------------------------------------------------------------


def _kill_and_see_restart(up: Up, name: str, pid: int, label: str) -> list[str]:
    """SIGKILL a server of ``up``; return the /health statuses seen until it was back."""
    os.kill(pid, signal.SIGKILL)
    seen: list[str] = []

    def back() -> bool:
        status, body = up.health(timeout=2)
        seen.append(body.get("status", str(status)) if status == 200 else f"http {status}")
        new = up.server_pids().get(name)
        return f"{label} restarted" in up.output() and new not in (None, pid) and seen[-1] == "ok"

    _until(f"{label} restarted", back, 60)
    assert f"{label} (pid {pid}) exited" in up.output()
    return seen


def test_up_restarts_killed_servers_and_stops_promptly(tmp_path: Path) -> None:
    """kill -9 of the embedded nats-server, then of PostgreSQL: ``up`` says so, restarts each
    (same URLs), /health is degraded meanwhile, and events published afterwards are stored.
    Then SIGINT while both servers are down: everything stops within 10 s."""
    with running_up(tmp_path / "home") as up:
        nats_url, database_url = up.runtime()["nats_url"], up.runtime()["database_url"]
        _publish(nats_url, _battles("a", 50))
        _until("first events stored", lambda: _stored(database_url) == 50)

        seen = _kill_and_see_restart(up, "nats-server", up.server_pids()["nats-server"],
                                     "nats-server")  # fmt: skip
        assert "degraded" in seen, seen
        _publish(nats_url, _battles("b", 50))
        _until("events after the NATS restart", lambda: _stored(database_url) == 100)

        _kill_and_see_restart(up, "postgres", up.server_pids()["postgres"], "PostgreSQL")
        assert up.runtime()["database_url"] == database_url
        _publish(nats_url, _battles("c", 50))
        _until("events after the PostgreSQL restart", lambda: _stored(database_url) == 150)
        _until(
            "projected", lambda: all(p["lag_events"] == 0 for p in up.health()[1]["projections"])
        )

        assert up.proc is not None
        servers = [psutil.Process(p) for p in up.server_pids().values()]
        for proc in servers:
            proc.kill()
        took = up.stop(signal.SIGINT, timeout=30)
        assert took < 10, f"took {took:.1f}s\n{up.output()}"
        assert up.proc.returncode == 0, up.output()
        assert not _leftovers(up.home)


def _leftovers(home: Path) -> list[psutil.Process]:
    """Server processes still working on ``home`` (by command line or working directory)."""
    found = []
    for proc in psutil.process_iter(["cmdline", "cwd"]):
        mentions = " ".join(proc.info["cmdline"] or []) + " " + (proc.info["cwd"] or "")
        if str(home) in mentions and proc.pid != os.getpid():
            found.append(proc)
    return found


# -- after a crash, nothing waits hidden ---------------------------------------------------------


def test_killed_up_redelivers_promptly_and_health_shows_the_wait(tmp_path: Path) -> None:
    """kill -9 of ``up`` while the ingest holds fetched, unacknowledged batches: after a
    restart every event is stored within seconds (not JetStream's old 60 s ack_wait), and
    /health meanwhile shows them pending and redelivered in ``ingest`` rather than lag 0."""
    home = tmp_path / "home"
    n = 1500  # more than one ingest batch (1,000): one is appended, the next is fetched
    up = Up(home, find_free_port(), find_free_port(), ARBITER_FAULT_SLEEP_BEFORE_ACK="60").start()
    try:
        up.wait_healthy()
        nats_url, database_url = up.runtime()["nats_url"], up.runtime()["database_url"]
        _publish(nats_url, _battles("k", n))
        _until("a batch appended (and held unacknowledged)", lambda: _stored(database_url) > 0)
        time.sleep(1.0)  # the next batch is fetched meanwhile
        held = up.health()[1]["ingest"]
        assert held["ack_pending"] > 0 and held["pending"] == n, held
        assert _stored(database_url) < n
        assert up.proc is not None
        os.kill(up.proc.pid, signal.SIGKILL)
        up.proc.wait(10)
    except BaseException:
        print("arbiter up printed:\n" + up.output())
        if up.proc is not None and up.proc.poll() is None:
            up.stop()
        raise

    # Restarted on the same NATS port, which the killed up's orphaned nats-server still holds
    # (the new up stops it first); its ingest holds each batch 3 s, so /health can watch.
    with running_up(home, up.nats_port, ARBITER_FAULT_SLEEP_BEFORE_ACK="3") as again:
        assert again.runtime()["nats_url"] == nats_url
        restarted = time.monotonic()
        database_url = again.runtime()["database_url"]
        views: list[dict[str, Any]] = []

        def all_stored() -> bool:
            status, body = again.health()
            if status == 200:
                views.append(body)
            return _stored(database_url) == n

        _until("every event stored after the restart", all_stored, 30)
        took = time.monotonic() - restarted
        assert took < 20, f"{took:.1f}s"
        waiting = [v["ingest"] for v in views if v["ingest"]["pending"] > 0]
        assert waiting, views[-1:]
        assert any(w["redelivered"] > 0 for w in waiting), waiting
        # Never "lag 0" alone while events wait: `arbiter health` says what waits in NATS.
        _publish(again.runtime()["nats_url"], _battles("late", 10))
        report = _cli("health", env=again.env)
        assert "waiting in NATS" in report.stdout, report.stdout + report.stderr
