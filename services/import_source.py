"""Where an import reads from: a file, gzip or not, or standard input (``-``).

The arena-file reader sniffs the format from the first bytes and counts the rows for the
progress bar before it reads them, so it needs a file it can open more than once. A plain file
is used as it is; standard input and gzip (recognised by its magic bytes, not the name) are
copied, decompressed, to a temporary file first, in 1 MiB chunks: memory stays flat and the
temporary file is removed when the import ends, however it ends. A gzip stream that ends
early or holds corrupt data is :class:`UnreadableFile`, naming the file, before any row is read
(it was an ``EOFError`` or a ``zlib.error``, which the command line showed as "Aborted." or a
traceback).
"""

from __future__ import annotations

import gzip
import shutil
import sys
import tempfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

__all__ = ["GZIP_MAGIC", "UnreadableFile", "readable_file"]

GZIP_MAGIC = b"\x1f\x8b"
_CHUNK = 1 << 20


class UnreadableFile(Exception):
    """The input cannot be read as what it says it is (a broken gzip stream)."""


@contextmanager
def readable_file(path: Path | str) -> Iterator[Path]:
    """A plain, re-readable file with the content of ``path`` (``-``: standard input)."""
    if str(path) == "-":
        with _spooled(sys.stdin.buffer) as spooled:
            yield spooled
        return
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    with path.open("rb") as f:
        compressed = f.read(2) == GZIP_MAGIC
    if not compressed:
        yield path
        return
    with path.open("rb") as f, _spooled(f) as spooled:
        yield spooled


@contextmanager
def _spooled(source: IO[bytes]) -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="arbiter-import-") as tmp:
        target = Path(tmp) / "input"
        head = source.read(2)
        with target.open("wb") as out:
            if head == GZIP_MAGIC:
                name = getattr(source, "name", "the input")
                name = "stdin" if name == "<stdin>" else str(name)
                try:
                    with gzip.open(_Prefixed(head, source), "rb") as unzipped:
                        shutil.copyfileobj(unzipped, out, _CHUNK)
                except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
                    problem = "it ends before its last block" if isinstance(exc, EOFError) else exc
                    raise UnreadableFile(f"{name} is not valid gzip: {problem}") from exc
            else:
                out.write(head)
                shutil.copyfileobj(source, out, _CHUNK)
        yield target


class _Prefixed:
    """A byte stream whose first bytes were already read (to sniff gzip), put back in front."""

    def __init__(self, head: bytes, rest: IO[bytes]) -> None:
        self.head, self.rest = head, rest

    def read(self, size: int = -1) -> bytes:
        if self.head:
            if size < 0:
                data, self.head = self.head + self.rest.read(), b""
                return data
            data, self.head = self.head[:size], self.head[size:]
            return data + (self.rest.read(size - len(data)) if size > len(data) else b"")
        return self.rest.read(size)
