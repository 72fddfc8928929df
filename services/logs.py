"""Logs an operator can use: plain text for a terminal, one JSON object per line for a collector.

``ARBITER_LOG_FORMAT`` chooses: ``text`` (the default) or ``json``; any other value is refused
(:class:`LogFormatError`, exit 2 from the CLI) rather than silently falling back. A JSON line
holds ``time`` (UTC, ISO 8601, milliseconds), ``level``, ``service``, ``logger``, ``message``,
``exception`` when there is one, and whichever of :data:`CONTEXT` the call site gave as
``extra`` (the event id of a rejection, the log positions of a batch, ...), so a collector can
filter by event or batch without parsing sentences.

``service`` is the command that runs (``ingest``, ``project``, ``api``, ...). Under ``arbiter
up`` the services are threads of one process, named for what they run, so a record from one of
those threads carries that name instead (``ingest``, ``projector``, ``api``, ``webhooks``).

Never a secret, in either format: every message, context value and traceback goes through
:func:`scrub`, which hides URL passwords (``nats://user:***@host``), the secret half of an API
key token (``ak_1a2b3c4d.***``), bearer credentials and ``password=`` pairs of a libpq
connection string. Request lines are not logged at all (uvicorn's access log stays off, see the
README), so query strings with tokens never reach a log.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from arbiter.adapters.urls import redact

__all__ = [
    "CONTEXT",
    "FORMATS",
    "FORMAT_ENV",
    "JsonFormatter",
    "LogFormatError",
    "TextFormatter",
    "configure",
    "log_format",
    "scrub",
]

FORMAT_ENV = "ARBITER_LOG_FORMAT"
FORMATS = ("text", "json")
CONTEXT = (
    "event_id",
    "code",
    "subject",
    "stream_seq",
    "projection",
    "position",
    "first_position",
    "last_position",
    "events",
    "batch_size",
    "rejected",
    "duration_ms",
    "delay_s",
    "attempt",
)
"""Structured fields a call site may pass as ``extra``; only these are written."""

_THREAD_SERVICES = frozenset({"ingest", "projector", "api", "webhooks", "supervisor"})
_TOKEN = re.compile(r"\b(ak_[0-9A-Za-z]{1,29})\.[A-Za-z0-9_\-]+")
_BEARER = re.compile(r"(?i)\b(bearer\s+)[^\s,;\"']+")
_PASSWORD_PAIR = re.compile(r"(?i)\b(password\s*=\s*)('[^']*'|[^\s']+)")


class LogFormatError(ValueError):
    """``ARBITER_LOG_FORMAT`` names no format."""


def log_format(environ: Mapping[str, str] = os.environ) -> str:
    """The chosen format, ``text`` when unset or empty."""
    value = environ.get(FORMAT_ENV, "").strip().lower() or "text"
    if value not in FORMATS:
        raise LogFormatError(
            f"{FORMAT_ENV}={environ[FORMAT_ENV]!r} is not a log format; it takes "
            + " or ".join(FORMATS)
        )
    return value


def scrub(text: str) -> str:
    """``text`` with every secret Arbiter knows the shape of replaced by ``***``."""
    text = redact(text)
    text = _TOKEN.sub(r"\1.***", text)
    text = _BEARER.sub(r"\1***", text)
    return _PASSWORD_PAIR.sub(r"\1***", text)


def _service(record: logging.LogRecord, default: str) -> str:
    return record.threadName if record.threadName in _THREAD_SERVICES else default


class JsonFormatter(logging.Formatter):
    """One JSON object per record (see the module docstring for its fields)."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "service": _service(record, self.service),
            "logger": record.name,
            "message": scrub(record.getMessage()),
        }
        for key in CONTEXT:
            value = record.__dict__.get(key)
            if value is not None:
                line[key] = scrub(value) if isinstance(value, str) else value
        if record.exc_info:
            line["exception"] = scrub(self.formatException(record.exc_info))
        elif record.exc_text:
            line["exception"] = scrub(record.exc_text)
        return json.dumps(line, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """The plain format, with the service and with secrets scrubbed like the JSON one."""

    def __init__(self, service: str) -> None:
        super().__init__("%(asctime)s %(levelname)s %(service)s %(name)s: %(message)s")
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        record.service = _service(record, self.service)
        return scrub(super().format(record))


def configure(service: str, verbose: bool = False, environ: Mapping[str, str] = os.environ) -> str:
    """Send every log record of this process to stderr in the chosen format (INFO with
    ``verbose``, else WARNING); returns the format. Replaces handlers set before, so calling it
    twice does not print twice."""
    chosen = log_format(environ)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service) if chosen == "json" else TextFormatter(service))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.INFO if verbose else logging.WARNING)
    return chosen
