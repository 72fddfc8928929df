"""The web pages in a real browser (issue 16, point 3): Debian's ``chromium`` driven by
Playwright (pointed at that executable; Playwright's own browser downloads are never used)
against a real ``arbiter up`` in a fresh home, fed by ``arbiter demo`` and ``POST /events``.

For every page, at 375 px and at desktop width: it loads with no console error and no failed
script; every request it makes goes to 127.0.0.1 (anything else is aborted and recorded, so a
CDN font or script fails the test); nothing is wider than the screen; the numbers on it equal
the JSON route's (read from ``data-value``); its charts exist with one mark per competitor. The
live board changes after a publish without a reload; tables sort on a click; with keys enforced
and public reads off the pages ask for a key and a private experiment shows only to its owner.

Screenshots of every page land in ``tests/artifacts/web/`` (git-ignored), kept for a look after
a run; ``docs/screenshots/`` holds two of them for the README. ``.ci/run`` installs chromium
when it is missing; elsewhere the module is skipped with the reason.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
import pytest
from arbiter.adapters.embedded import find_free_port

CHROMIUM = os.environ.get("ARBITER_CHROMIUM") or shutil.which("chromium")
ARTIFACTS = Path(__file__).parent / "artifacts" / "web"
WIDTHS = {"phone": 375, "desktop": 1280}
ARENA = "demo"
EXPERIMENT = "demo-7-tts"

pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="no `chromium` on PATH (Debian: apt-get install chromium; .ci/run installs it)",
)


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "arbiter.services.cli", *args], env=env,
                          capture_output=True, text=True, timeout=180)  # fmt: skip


@dataclass
class Server:
    base: str
    env: dict[str, str]

    def get(self, path: str, token: str | None = None, **params: Any) -> Any:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        r = httpx.get(self.base + path, params=params, headers=headers, timeout=30)
        r.raise_for_status()
        return r.json()

    def until(self, check: Callable[[], bool], what: str, seconds: float = 90) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                if check():
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """``arbiter up`` in a fresh home, with public reads off (nothing is enforced until the
    first key exists: the privacy test, last, creates keys) and no key cache, fed by a demo."""
    home = tmp_path_factory.mktemp("web") / "home"
    port = find_free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARBITER_")}
    env |= {"ARBITER_HOME": str(home), "ARBITER_PUBLIC_READS": "false",
            "ARBITER_AUTH_CACHE_TTL": "0"}  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", "arbiter.services.cli", "up", "--port", str(port),
         "--nats-port", str(find_free_port())],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    s = Server(f"http://127.0.0.1:{port}", env)
    try:
        s.until(lambda: httpx.get(s.base + "/health", timeout=2).status_code == 200, "health")
        demo = _cli("demo", "--battles", "60", env=env)
        assert demo.returncode == 0, demo.stderr
        # 60 battles, one in ten judged by two voters later: 66 rated results of two sides
        s.until(
            lambda: sum(r["games"] for r in s.get("/leaderboard", arena=ARENA)["rows"]) == 132,
            "the demo's battles on the board",
        )
        s.until(lambda: s.get("/stats")["trials"] == 24, "the demo's trials")
        s.until(lambda: s.get("/games", limit=1)["total"] > 0, "the demo's games")
        yield s
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
        if proc.returncode != 0:
            print("arbiter up printed:\n" + out)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM)
        yield launched
        launched.close()


@dataclass
class Visit:
    """A page as the browser saw it, and what went wrong on the way."""

    page: Any
    status: int
    console_errors: list[str] = field(default_factory=list)
    outside: list[str] = field(default_factory=list)

    def values(self, selector: str, attribute: str = "data-value") -> list[str]:
        return self.page.eval_on_selector_all(
            selector, f"els => els.map(e => e.getAttribute('{attribute}'))"
        )


def _local(url: str) -> bool:
    return url.startswith(("data:", "about:")) or urlsplit(url).hostname == "127.0.0.1"


def visit(browser: Any, url: str, name: str, width: int, *, cookies: list[Any] = ()) -> Visit:
    """Open ``url`` in a fresh browser context ``width`` px wide; record console errors and
    every request that would leave 127.0.0.1 (aborted); save a screenshot as ``name``."""
    context = browser.new_context(viewport={"width": width, "height": 900})
    if cookies:
        context.add_cookies(list(cookies))
    page = context.new_page()
    seen = Visit(page, 0)

    def route(r: Any) -> None:
        if _local(r.request.url):
            r.continue_()
        else:
            seen.outside.append(r.request.url)
            r.abort()

    context.route("**/*", route)
    page.on("console", lambda m: seen.console_errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: seen.console_errors.append(f"uncaught: {e}"))
    page.on(
        "requestfailed",
        lambda r: None if not _local(r.url) else seen.console_errors.append(f"failed: {r.url}"),
    )
    response = page.goto(url, wait_until="load")
    seen.status = response.status if response else 0
    page.wait_for_timeout(300)  # late requests (a favicon, the live stream) and their errors
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}-{width}.png"), full_page=True)
    return seen


def _loaded_well(seen: Visit, width: int) -> None:
    assert seen.status == 200
    assert seen.console_errors == []
    assert seen.outside == []
    wide = seen.page.evaluate("document.documentElement.scrollWidth")
    assert wide <= width, f"the page is {wide} px wide on a {width} px screen"
    assert seen.page.locator("main h1").count() == 1


def _competitors(server: Server) -> list[str]:
    return [r["competitor"] for r in server.get("/leaderboard", arena=ARENA)["rows"]]


def _close(page_values: list[str], api_values: list[Any]) -> None:
    assert [None if v in (None, "") else float(v) for v in page_values] == [
        None if v is None else pytest.approx(float(v), rel=1e-6) for v in api_values
    ]


# -- every page: loads cleanly, at both widths, with the API's numbers ----------------------


def check_arenas(server: Server, seen: Visit) -> None:
    row = f'tr[data-arena="{ARENA}"] td'
    assert seen.values(row)[1] == str(len(_competitors(server)))


def _check_board(server: Server, seen: Visit, system: str) -> list[str]:
    board = server.get("/leaderboard", arena=ARENA, system=system)["rows"]
    assert seen.values("#board tbody tr", "data-competitor") == [r["competitor"] for r in board]
    _close(seen.values('#board td[data-field="rating"]'), [r["rating"] for r in board])
    return [r["competitor"] for r in board]


def check_board(server: Server, seen: Visit) -> None:
    _check_board(server, seen, "elo")


def check_bt_board(server: Server, seen: Visit) -> None:
    competitors = _check_board(server, seen, "bt")
    marks = seen.values("svg.chart .mark", "data-competitor")
    assert sorted(marks) == sorted(competitors)


def check_head_to_head(server: Server, seen: Visit) -> None:
    pairs = server.get("/head-to-head", arena=ARENA, limit=1000)
    rows = pairs["rows"] if isinstance(pairs, dict) else pairs
    counts = 'svg[aria-label="results between row and column"] rect.mark'
    for p in rows:
        cell = f'{counts}[data-a="{p["competitor"]}"][data-b="{p["opponent"]}"]'
        assert float(seen.page.get_attribute(cell, "data-value")) == p["games"]
    names = set(_competitors(server))
    assert set(seen.values(f"{counts}:not(.empty)", "data-a")) <= names
    assert set(seen.values(f"{counts}", "data-a")) == names


def check_competitor(server: Server, seen: Visit) -> None:
    top = _competitors(server)[0]
    detail = server.get(f"/competitors/{quote(top, safe='')}", arena=ARENA)
    standing = next(s for s in detail["standings"] if s["arena"] == ARENA and s["category"] == "")
    rating = seen.values(f'tr[data-arena="{ARENA}"][data-category=""] td')[3]
    assert float(rating) == pytest.approx(standing["rating"], rel=1e-9)
    assert set(seen.values("svg.chart .mark", "data-competitor")) == {top}


def check_experiment(server: Server, seen: Visit) -> None:
    report = server.get(f"/experiments/{EXPERIMENT}/results")
    ranked = [r["competitor"] for r in report["rankings"]]
    assert seen.values("#rankings tbody tr", "data-competitor") == ranked
    _close(seen.values("#rankings tbody tr td:nth-child(3)"), [r["composite"] for r in
                                                                report["rankings"]])  # fmt: skip
    assert seen.page.get_attribute("#winner", "data-winner") == (report["winner"] or "")
    assert seen.page.get_attribute("#winner", "data-confidence") == report["confidence"]
    h2h = [(h["a"], h["b"], h["a_wins"], h["b_wins"], h["ties"]) for h in report["head_to_head"]]
    shown = seen.page.eval_on_selector_all(
        "#head-to-head tbody tr",
        "rs => rs.map(r => [r.dataset.a, r.dataset.b, ...Array.from(r.cells).slice(2)"
        ".map(c => Number(c.dataset.value))])",
    )
    assert [tuple(r) for r in shown] == h2h
    assert sorted(seen.values("svg.chart .mark", "data-competitor")) == sorted(ranked)


def _check_stats(server: Server, seen: Visit, group_by: str) -> None:
    stats = server.get("/stats", group_by=group_by)
    keys = [g["key"] or "" for g in stats["groups"]]
    assert seen.values("#stats tbody tr", "data-group") == keys
    _close(seen.values('#stats td[data-measure="count"]'), [g["count"] for g in stats["groups"]])
    _close(
        seen.values('#stats td[data-measure="total_cost_usd"]'),
        [g["total_cost_usd"] for g in stats["groups"]],
    )
    _close(
        seen.values('#stats td[data-measure="metric:ttfb_ms"]'),
        [g["metrics"].get("ttfb_ms") for g in stats["groups"]],
    )
    figures = seen.page.locator("figure[data-measure]")
    assert figures.count() >= 8  # 6 fixed measures with values and every metric
    attribute = "data-competitor" if group_by == "competitor" else "data-group"
    for i in range(figures.count()):
        marks = figures.nth(i).locator(f"svg .mark[{attribute}]")
        assert marks.count() == len(keys)


def check_stats(server: Server, seen: Visit) -> None:
    _check_stats(server, seen, "competitor")


def check_stats_by_style(server: Server, seen: Visit) -> None:
    _check_stats(server, seen, "style")


def check_log(server: Server, seen: Visit) -> None:
    page = server.get("/events", limit=50)
    assert seen.values("#events tbody tr", "data-event-id") == [
        e["event"]["event_id"] for e in page["events"]
    ]
    assert seen.values("#events tbody tr", "data-position") == [
        str(e["position"]) for e in page["events"]
    ]
    assert seen.page.text_content("#log-head") == str(page["head"])


def check_log_by_type(server: Server, seen: Visit) -> None:
    page = server.get("/events", type="game.completed")
    assert seen.values("#events tbody tr", "data-event-id") == [
        e["event"]["event_id"] for e in page["events"]
    ]
    assert page["events"]


def check_event(server: Server, seen: Visit) -> None:
    found = server.get(f"/events/{_battle(server)['event_id']}")
    assert seen.page.text_content("#position") == str(found["position"])
    assert json.loads(seen.page.text_content("pre.json")) == found["event"]


def check_battle(server: Server, seen: Visit) -> None:
    b = server.get(f"/battles/{_battle(server)['battle_id']}")
    votes = b["votes"]
    assert seen.page.text_content("#votes") == f"{votes['a']} / {votes['b']} / {votes['tie']}"
    assert len(b["vote_list"]) == 2 and seen.values("#votes-table tbody tr td")[::4] == [
        str(v["position"]) for v in b["vote_list"]
    ]
    if b["elo_delta"]:
        _close(seen.values("#elo-delta span"), [b["elo_delta"]["a"], b["elo_delta"]["b"]])


def check_game(server: Server, seen: Visit) -> None:
    g = server.get(f"/games/{_game(server)}")
    assert seen.values("#participants tbody tr", "data-competitor") == [
        p["competitor"] for p in g["participants"]
    ]
    _close(seen.values("#participants td:nth-child(3)"), [p["score"] for p in g["participants"]])


def _battle(server: Server) -> dict[str, Any]:
    """A battle with votes (the demo's battles without an outcome are judged by two voters)."""
    battles = server.get("/battles", arena=ARENA, limit=1000)["battles"]
    return next(b for b in battles if sum(b["votes"].values()) == 2)


def _game(server: Server) -> str:
    return server.get("/games", limit=1)["games"][0]["game_id"]


PAGES: dict[str, tuple[Callable[[Server], str], Callable[[Server, Visit], None]]] = {
    "arenas": (lambda s: "/", check_arenas),
    "board": (lambda s: f"/ui/arenas/{ARENA}", check_board),
    "board-bt": (lambda s: f"/ui/arenas/{ARENA}?system=bt", check_bt_board),
    "head-to-head": (lambda s: f"/ui/arenas/{ARENA}/head-to-head", check_head_to_head),
    "competitor": (
        lambda s: f"/ui/competitors/{quote(_competitors(s)[0], safe='')}?arena={ARENA}",
        check_competitor,
    ),
    "experiment": (lambda s: f"/ui/experiments/{EXPERIMENT}", check_experiment),
    "stats": (lambda s: "/ui/stats", check_stats),
    "stats-by-style": (lambda s: "/ui/stats?group_by=style", check_stats_by_style),
    "log": (lambda s: "/ui/log?limit=50", check_log),
    "log-games": (lambda s: "/ui/log?type=game.completed", check_log_by_type),
    "event": (lambda s: f"/ui/log/{_battle(s)['event_id']}", check_event),
    "battle": (lambda s: f"/ui/battles/{_battle(s)['battle_id']}", check_battle),
    "game": (lambda s: f"/ui/games/{_game(s)}", check_game),
}


@pytest.mark.parametrize("width", WIDTHS.values(), ids=WIDTHS.keys())
@pytest.mark.parametrize("name", PAGES)
def test_page_loads_cleanly_with_the_api_numbers(server, browser, name, width):
    path, check = PAGES[name]
    seen = visit(browser, server.base + path(server), name, width)
    try:
        _loaded_well(seen, width)
        check(server, seen)
    finally:
        seen.page.context.close()


def test_tables_sort_on_a_click(server, browser):
    seen = visit(browser, server.base + "/ui/log?limit=20", "log-sorted", WIDTHS["desktop"])
    positions = [int(v) for v in seen.values("#events tbody tr", "data-position")]
    header = seen.page.locator("#events th", has_text="position")
    header.click()
    header.click()  # ascending first, then descending
    after = [int(v) for v in seen.values("#events tbody tr", "data-position")]
    assert after == sorted(positions, reverse=True) and after != positions
    seen.page.context.close()


def test_live_board_changes_after_a_publish(server, browser):
    seen = visit(browser, server.base + f"/ui/arenas/{ARENA}", "board-live", WIDTHS["desktop"])
    page = seen.page
    page.wait_for_selector("#live-status.on", timeout=30_000)
    page.evaluate("window.__same_document = true")  # gone if the page reloads
    a, b = _competitors(server)[-2:]
    cell = f'#board tr[data-competitor="{b}"] td[data-field="games"]'
    before = int(page.get_attribute(cell, "data-value"))
    battle = {"type": "battle.completed", "event_id": "web-live-1", "battle_id": "web-live-1",
              "occurred_at": "2026-02-01T00:00:00Z", "arena": ARENA, "a": a, "b": b,
              "outcome": "b"}  # fmt: skip
    r = httpx.post(server.base + "/events", json=battle, timeout=30)
    assert r.status_code == 202, r.text
    page.wait_for_function(
        "([sel, n]) => Number(document.querySelector(sel).dataset.value) === n",
        arg=[cell, before + 1],
        timeout=30_000,
    )
    assert page.evaluate("window.__same_document") is True
    assert seen.console_errors == [] and seen.outside == []
    api = {row["competitor"]: row for row in server.get("/leaderboard", arena=ARENA)["rows"]}
    assert float(page.get_attribute(cell.replace("games", "rating"), "data-value")) == (
        pytest.approx(api[b]["rating"], rel=1e-9)
    )
    page.screenshot(path=str(ARTIFACTS / "board-live-after.png"))
    page.context.close()


# -- keys: last, since creating a key turns enforcement on for this server ------------------


def _key(server: Server, *scopes: str) -> str:
    args = ["keys", "create", "--name", "-".join(scopes)]
    for scope in scopes:
        args += ["--scope", scope]
    made = _cli(*args, env=server.env)
    assert made.returncode == 0, made.stderr
    return made.stdout.strip().splitlines()[-1]


def _with_key(browser: Any, server: Server, path: str, token: str, name: str) -> Visit:
    """Open ``path`` without a key, answer the key form with ``token``, land on ``path``."""
    seen = visit(browser, server.base + path, name, WIDTHS["phone"])
    assert seen.status == 401
    assert all("401" in e for e in seen.console_errors), seen.console_errors
    seen.console_errors.clear()  # the 401 was the point; what follows must be clean
    form = seen.page.locator("form.key-form")
    form.locator("input[name=key]").fill(token)
    with seen.page.expect_navigation():
        form.locator("button").click()
    return seen


def test_keys_are_asked_for_and_a_private_experiment_shows_only_to_its_owner(server, browser):
    owner = _key(server, "read", "publish")
    other = _key(server, "read")
    server.until(
        lambda: httpx.get(server.base + "/ui/log", timeout=5).status_code == 401,
        "keys enforced on the pages",
    )
    trial = {"type": "trial.completed", "event_id": "web-private-1", "trial_id": "web-private-1",
             "occurred_at": "2026-02-01T00:00:00Z", "arena": "private-tts",
             "experiment_id": "web-private", "competitor": "voice-x", "prompt_index": 0,
             "status": "completed", "metrics": {"ttfb_ms": 300}}  # fmt: skip
    r = httpx.post(server.base + "/events", json=trial, timeout=30,
                   headers={"Authorization": f"Bearer {owner}"})  # fmt: skip
    assert r.status_code == 202, r.text
    server.until(
        lambda: server.get("/experiments/web-private/results", owner)["total"] == 1,
        "the private trial",
    )
    path = "/ui/experiments/web-private"

    stranger = _with_key(browser, server, path, other, "private-other")
    assert stranger.page.url == server.base + path
    assert "not_found" in stranger.page.text_content("main h1")
    stranger.page.goto(server.base + "/ui/log?limit=1000")
    assert "web-private-1" not in stranger.values("#events tbody tr", "data-event-id")
    stranger.page.context.close()

    mine = _with_key(browser, server, path, owner, "private-owner")
    assert mine.page.url == server.base + path
    assert "web-private" in mine.page.text_content("main h1")
    assert mine.values("#competitors tbody tr", "data-competitor") == ["voice-x"]
    mine.page.goto(server.base + "/ui/log?limit=1000")
    assert "web-private-1" in mine.values("#events tbody tr", "data-event-id")
    assert mine.console_errors == [] and mine.outside == []
    mine.page.context.close()
