"""``arbiter <command> --help`` for every command, through the real console script: no type-label
artefacts (``<bool>`` on a flag, ``<str>``), no ``[default: None]``, and every parameter's help
text present. Typer and Click versions have each broken one of these (see pyproject.toml)."""

from __future__ import annotations

import inspect
import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, get_type_hints

import pytest
import typer
from arbiter.services.cli import app
from typer.models import ParameterInfo

ARBITER = shutil.which("arbiter", path=str(Path(sys.executable).parent)) or "arbiter"
ARTEFACTS = re.compile(r"<[a-z][a-z_ \[\]|,.]*>|\[default: None\]")
"""A type label in angle brackets, as typer >= 0.27 prints them (``<bool>``, ``<int range>``,
``<list[str]>``), and the ``[default: None]`` typer 0.16 printed for options without one."""


def _commands() -> list[tuple[list[str], Any]]:
    """Every command path (the root, groups and their commands) with its Python function, read
    from the Typer apps themselves (not from the click objects a broken version builds)."""
    out: list[tuple[list[str], Any]] = []
    todo: list[tuple[list[str], typer.Typer]] = [([], app)]
    while todo:
        path, group = todo.pop()
        out.append((path, None))
        for info in group.registered_commands:
            assert info.callback is not None
            name = info.name or info.callback.__name__.replace("_", "-")
            out.append(([*path, name], info.callback))
        for sub in group.registered_groups:
            assert sub.typer_instance is not None and sub.name is not None
            todo.append(([*path, sub.name], sub.typer_instance))
    return sorted(out, key=lambda pc: pc[0])


def _param_helps(function: Any) -> list[str]:
    """The help texts given to the function's options and arguments (``Annotated[...,
    typer.Option(help=...)]``)."""
    if function is None:
        return []
    hints = get_type_hints(function, include_extras=True)
    return [
        meta.help
        for name in inspect.signature(function).parameters
        for meta in getattr(hints.get(name), "__metadata__", ())
        if isinstance(meta, ParameterInfo) and meta.help
    ]


COMMANDS = _commands()


def _help(path: list[str]) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "400", "TERM": "dumb", "NO_COLOR": "1"}
    return subprocess.run(
        [ARBITER, *path, "--help"], capture_output=True, text=True, env=env, timeout=120
    )


@pytest.fixture(scope="module")
def helps() -> dict[str, subprocess.CompletedProcess[str]]:
    with ThreadPoolExecutor(4) as pool:
        done = pool.map(_help, [path for path, _ in COMMANDS])
        return {" ".join(path): result for (path, _), result in zip(COMMANDS, done, strict=True)}


def test_every_command_is_covered() -> None:
    names = {" ".join(path) for path, _ in COMMANDS}
    assert {"", "up", "publish", "import", "audit verify", "evals trial", "keys create"} <= names


@pytest.mark.parametrize("path", [" ".join(p) for p, _ in COMMANDS], ids=lambda p: p or "arbiter")
def test_help_renders_cleanly(path: str, helps: dict[str, Any]) -> None:
    result = helps[path]
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())  # unwrap the table cells
    assert "Usage: arbiter" in text
    assert not ARTEFACTS.findall(text), (path, ARTEFACTS.findall(text))
    function = dict((" ".join(p), f) for p, f in COMMANDS)[path]
    for help_text in _param_helps(function):
        words = " ".join(help_text.split()[:4])
        assert words in text, (path, words)
