"""``arbiter up`` on the embedded default: starts, serves, takes events, stops cleanly."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
from arbiter.adapters.embedded import find_free_port
from arbiter.services.demo import demo_events


def _cli(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "arbiter.services.cli", *args], env=env,
                          capture_output=True, text=True, timeout=timeout)  # fmt: skip


def test_up_serves_and_stops_cleanly(tmp_path: Path) -> None:
    port = find_free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARBITER_")}
    env["ARBITER_HOME"] = str(tmp_path / "home")
    proc = subprocess.Popen(
        [sys.executable, "-m", "arbiter.services.cli", "up", "--port", str(port),
         "--nats-port", str(find_free_port())],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    children: list[psutil.Process] = []
    out = ""
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.3)
        else:
            raise AssertionError("arbiter up did not become healthy")
        children = psutil.Process(proc.pid).children(recursive=True)
        names = {c.name() for c in children}
        assert "nats-server" in names and "postgres" in names
        runtime = json.loads((tmp_path / "home" / "runtime.json").read_text())
        assert runtime["nats_url"].startswith("nats://127.0.0.1:")

        demo = _cli("demo", "--battles", "60", env=env)
        assert demo.returncode == 0, demo.stderr
        rows: list[dict[str, object]] = []
        while time.monotonic() < deadline:
            try:
                r = httpx.get(f"{base}/leaderboard", params={"arena": "demo"}, timeout=10)
            except httpx.TransportError:  # a loaded machine; a dead API fails the poll below
                assert proc.poll() is None, "arbiter up exited"
                time.sleep(0.5)
                continue
            rows = r.json()["rows"]
            # 60 battles, one in ten awaiting votes and then judged by two voters
            if sum(int(r["games"]) for r in rows) == 2 * 66:  # type: ignore[call-overload]
                break
            time.sleep(0.3)
        assert len(rows) == 8
        board = _cli("leaderboard", "--arena", "demo", env=env)
        assert board.returncode == 0 and rows[0]["competitor"] in board.stdout
        audit = _cli("audit", "verify", env=env)
        assert audit.returncode == 0 and "digest" in audit.stdout, audit.stdout + audit.stderr
        digest = audit.stdout.split("digest ")[1].split()[0]
    except BaseException:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
        print("arbiter up printed:\n" + out)  # shown by pytest with the failure
        raise
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    assert "API:" in out and "stopped" in out
    _gone, alive = psutil.wait_procs(children, timeout=10)
    assert not alive, alive
    assert not (tmp_path / "home" / "runtime.json").exists()
    # Data survives a restart: the next up sees the same log.
    audit = _cli("audit", "verify", env=env)
    logged = len(demo_events(60, 7, "demo"))
    assert audit.returncode == 0 and f"{logged} events" in audit.stdout, audit.stdout
    assert audit.stdout.split("digest ")[1].split()[0] == digest
