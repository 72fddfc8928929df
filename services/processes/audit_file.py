"""Verification without the servers: ``arbiter audit export FILE`` and ``audit verify --from FILE``.

An auditor should not need access to the production database to check a leaderboard. The export
writes the log as it stands behind the verified read models, in a file that says what it is, and
the verifier re-derives both read models from that file alone (no PostgreSQL, no NATS) and
prints the digest the live audit printed.

The file (README, "Audit export file") is JSON Lines, gzip-compressed when its name ends in
``.gz``: one header object, then one object per event in log order:

* header: ``format`` (``"arbiter-audit-export"``), ``version`` (1), ``exported_at``,
  ``arbiter`` (the version that wrote it), ``events`` (how many lines follow), ``position`` (the
  last position exported), ``projections`` (per read model its ``position`` and the
  ``quarantined`` positions its projector skipped), ``digest`` (the live audit's digest of the
  verified state), and ``chain`` (the hash chain's head, when the store keeps one);
* event: ``position``, ``stream`` (the store's stream id, a UUID), ``version`` (the event's
  version in that stream), ``digest`` (hex SHA-256 the ingest recorded), ``chain`` (hex, when
  kept) and ``event`` (the event as the log stores it, as canonical JSON: the wire format v1
  object).

Export is two passes over the log: the live audit first (a file is written only for a verified
state), then the copy. Both read only positions up to the verified ones, which never change once
committed, so a running ingest does not disturb either pass.
"""

from __future__ import annotations

import gzip
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any
from uuid import UUID

import msgspec
import psycopg
from arbiter.adapters.eventstore import EventLog, decode_state
from arbiter.domain.chain import ChainCheck, StoredLink
from arbiter.domain.events import EVENT_DECODER, Event, canonical_json, type_name

from .audit import AuditReport, replay_models, verify
from .paging import PAGE, Page, collector_paused

__all__ = ["FORMAT", "VERSION", "ExportError", "FileReport", "export", "verify_file"]

FORMAT = "arbiter-audit-export"
VERSION = 1
_ENCODE = msgspec.json.Encoder(order="sorted")


class ExportError(Exception):
    """The export cannot be written (the live state does not verify) or a file cannot be read
    as an export (not one, another version, truncated)."""


class Header(msgspec.Struct, frozen=True):
    format: str
    version: int
    exported_at: str
    arbiter: str
    events: int
    position: int
    projections: dict[str, dict[str, Any]]
    digest: str
    chain: str | None = None


class Line(msgspec.Struct, frozen=True):
    position: int
    stream: str
    version: int
    digest: str
    event: msgspec.Raw
    chain: str | None = None


@dataclass
class FileReport:
    """What ``verify --from FILE`` found."""

    header: Header
    digest: str
    events: int
    problems: list[str] = field(default_factory=list)
    chain_head: str = ""
    chain_position: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems


@contextmanager
def _open(path: Path, mode: str) -> Iterator[IO[bytes]]:
    if path.name.endswith(".gz"):
        with gzip.open(path, mode + "b") as f:
            yield f  # type: ignore[misc]
    else:
        with open(path, mode + "b") as f:
            yield f


def export(
    database_url: str, path: Path, *, progress: Callable[[int, int], None] | None = None
) -> tuple[AuditReport, int]:
    """Verify the live read models, then write the log behind them to ``path`` (atomically: the
    file appears complete or not at all). Returns the audit report and the events written;
    :class:`ExportError` when the live state does not verify."""
    from arbiter import __version__

    with EventLog(database_url) as event_log:
        report = verify(database_url, event_log=event_log)
        if not report.ok:
            raise ExportError(
                f"the live read models do not verify ({len(report.mismatches)} mismatches); "
                "run `arbiter audit verify`, and export once it passes"
            )
        positions = _positions(database_url)
        until = max(positions.values(), default=0)
        projections = {
            name: {
                "position": position,
                "quarantined": sorted(
                    q.position for q in report.quarantined if q.projection == name
                ),
            }
            for name, position in positions.items()
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        suffix = ".gz" if path.name.endswith(".gz") else ""  # the temporary file is written alike
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
        os.close(fd)
        count, chain = _extent(database_url, until)
        header = Header(
            FORMAT,
            VERSION,
            datetime.now(UTC).isoformat(),
            __version__,
            count,
            until,
            projections,
            report.digest,
            chain,
        )
        written = 0
        try:
            with _open(Path(tmp), "w") as out, collector_paused():
                out.write(_ENCODE.encode(header) + b"\n")
                for rows in _rows(database_url, until):
                    out.writelines(_line(*row) for row in rows)
                    written += len(rows)
                    if progress:
                        progress(rows[-1][0], until)
            if written != count:  # pragma: no cover - the log below `until` never changes
                raise ExportError(f"counted {count} events up to {until} but wrote {written}")
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    return report, written


def _line(
    position: int, stream: Any, version: int, digest: bytes, state: bytes, link: bytes | None
) -> bytes:
    """One event record (keys sorted, as in the header)."""
    return b'{"chain":%s,"digest":"%s","event":%s,"position":%d,"stream":"%s","version":%d}\n' % (
        b"null" if link is None else b'"%s"' % bytes(link).hex().encode(),
        bytes(digest).hex().encode(),
        canonical_json(decode_state(state)),
        position,
        str(stream).encode(),
        version,
    )


def _has_chain(cur: Any) -> bool:
    cur.execute(
        "SELECT 1 FROM information_schema.columns WHERE table_name = 'arbiter_event_ids' "
        "AND column_name = 'chain'"
    )
    return cur.fetchone() is not None


def _extent(database_url: str, until: int) -> tuple[int, str | None]:
    """How many events the log holds up to ``until``, and the chain hash at ``until``."""
    with psycopg.connect(database_url) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM arbiter_events WHERE notification_id <= %s", (until,))
        count = int(cur.fetchone()[0])  # type: ignore[index]
        if not _has_chain(cur):
            return count, None
        cur.execute("SELECT chain FROM arbiter_event_ids WHERE notification_id = %s", (until,))
        row = cur.fetchone()
        return count, (bytes(row[0]).hex() if row and row[0] is not None else None)


def _positions(database_url: str) -> dict[str, int]:
    from arbiter.projections import PROJECTIONS, tracking

    with psycopg.connect(database_url) as conn, conn.cursor() as cur:
        return {
            name: tracking.position(cur, spec.schema, name) for name, spec in PROJECTIONS.items()
        }


def _rows(database_url: str, until: int) -> Iterator[list[tuple[Any, ...]]]:
    """The stored events up to ``until`` with their stream, version, digest and chain hash."""
    with psycopg.connect(database_url) as conn:
        cur = conn.cursor(binary=True)
        chain = "i.chain" if _has_chain(cur) else "NULL::bytea"
        after = 0
        while after < until:
            cur.execute(
                f"SELECT e.notification_id, e.originator_id, e.originator_version, i.digest, "
                f"e.state, {chain} FROM arbiter_events e JOIN arbiter_event_ids i "
                "ON i.notification_id = e.notification_id WHERE e.notification_id > %s "
                "AND e.notification_id <= %s ORDER BY e.notification_id LIMIT %s",
                (after, until, PAGE),
            )
            rows = cur.fetchall()
            if not rows:
                return
            after = rows[-1][0]
            yield rows


def read_header(path: Path) -> Header:
    """The header of an export file; :class:`ExportError` when it is not one."""
    try:
        with _open(path, "r") as f:
            first = f.readline()
        header = msgspec.json.decode(first, type=Header)
    except (OSError, EOFError, msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise ExportError(f"{path} is not an Arbiter audit export ({exc})") from exc
    if header.format != FORMAT:
        raise ExportError(f"{path} is not an Arbiter audit export (format {header.format!r})")
    if header.version != VERSION:
        raise ExportError(
            f"{path} is an audit export of version {header.version}; this Arbiter reads "
            f"version {VERSION}"
        )
    return header


def verify_file(path: Path, *, progress: Callable[[int, int], None] | None = None) -> FileReport:
    """Re-derive both read models from the export at ``path`` alone, recompute the hash chain
    over its events, and compare the digest and the chain head with the ones the live audit
    wrote into it."""
    header = read_header(path)
    problems: list[str] = []
    positions = {name: p["position"] for name, p in header.projections.items()}
    skips = {name: set(p["quarantined"]) for name, p in header.projections.items()}
    seen = 0
    chain = ChainCheck()

    def pages() -> Iterator[Page]:
        nonlocal seen
        page: Page = []
        last = 0
        with _open(path, "r") as f:
            f.readline()
            for number, raw in enumerate(f, 2):
                try:
                    line = msgspec.json.decode(raw, type=Line)
                    event: Event = EVENT_DECODER.decode(line.event)
                except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                    problems.append(f"line {number}: not an event record ({exc})")
                    return
                if line.position <= last:
                    problems.append(
                        f"line {number}: position {line.position} after {last} (out of order)"
                    )
                    return
                last = line.position
                seen += 1
                chain.check(line.position, event, _link(line, event))
                page.append((line.position, event))
                if len(page) >= PAGE:
                    yield page
                    if progress:
                        progress(last, header.position)
                    page = []
        if page:
            yield page

    with collector_paused():
        state = replay_models(
            pages(),
            positions.get("ratings", 0),
            positions.get("results", 0),
            skips.get("ratings", set()),
            skips.get("results", set()),
        )
    problems += [f"chain broken at {b}" for b in chain.breaks]
    if header.chain is not None and chain.previous.hex() != header.chain:
        problems.append(
            f"the chain ends at {chain.previous.hex()} (position {chain.position}); the header "
            f"says {header.chain}"
        )
    if seen != header.events:
        problems.append(f"the header announces {header.events} events; the file holds {seen}")
    if state.digest != header.digest:
        problems.append(f"replayed digest {state.digest} differs from the exported {header.digest}")
    return FileReport(header, state.digest, seen, problems, chain.previous.hex(), chain.position)


def _link(line: Line, event: Event) -> StoredLink:
    """What the file says the store held for an event, as the chain check reads it."""
    return StoredLink(
        UUID(line.stream).bytes,
        line.version,
        event.event_id,
        type_name(event),
        bytes.fromhex(line.digest),
        None if line.chain is None else bytes.fromhex(line.chain),
    )
